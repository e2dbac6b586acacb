"""Evaluate a model on a dataset split, as a Ray job.

    ray job submit --working-dir . -- python -m pipelines.evaluate --model models:/sing/1 --dataset /data/nsynth.ds

The flags are those of ``sing-ray evaluate``. Under ``ray job submit`` the job joins
the cluster (RAY_ADDRESS); elsewhere it starts a local Ray. The dataset must be
reachable from every node; the model travels through Ray's object store.
"""
from __future__ import annotations

import sys
from typing import Sequence

from sing_ray.cli import run_pipeline


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``sing-ray evaluate``'s flags, start or join Ray, run; returns the exit status."""
    return run_pipeline("evaluate", argv)


if __name__ == "__main__":
    sys.exit(main())
