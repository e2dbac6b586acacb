"""Train SING's three phases, as a Ray job.

    ray job submit --working-dir . -- python -m pipelines.train --dataset /data/nsynth.ds --preset paper --workers 4 --gpu

The flags are those of ``sing-ray train``. Under ``ray job submit`` the job joins
the cluster (RAY_ADDRESS); elsewhere it starts a local Ray. The dataset must be
reachable from every node (a URI or a shared folder), ``--storage`` too (a shared
folder), and ``--tracking-uri`` should name the cluster's MLflow server.
"""
from __future__ import annotations

import sys
from typing import Sequence

from sing_ray.cli import run_pipeline


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``sing-ray train``'s flags, start or join Ray, run; returns the exit status."""
    return run_pipeline("train", argv)


if __name__ == "__main__":
    sys.exit(main())
