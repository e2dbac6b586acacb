"""Ingest an NSynth-layout folder into a Parquet dataset, as a Ray job.

    ray job submit --working-dir . -- python -m pipelines.ingest --source /data/nsynth-train --out /data/nsynth-train.ds

The flags are those of ``sing-ray data ingest``. Under ``ray job submit`` the
job joins the cluster (RAY_ADDRESS); elsewhere it starts a local Ray. SOURCE
and DATASET must be reachable from every node: a shared folder or a URI.
"""
from __future__ import annotations

import sys
from typing import Sequence

from sing_ray.cli import run_pipeline


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``sing-ray data ingest``'s flags, start or join Ray, run; returns the exit status."""
    return run_pipeline("ingest", argv)


if __name__ == "__main__":
    sys.exit(main())
