"""Render a sample library, as a Ray job.

    ray job submit --working-dir . -- python -m pipelines.render --model models:/sing/1 --out s3://bucket/lib

The flags are those of ``sing-ray render``. Under ``ray job submit`` the job joins
the cluster (RAY_ADDRESS); elsewhere it starts a local Ray. OUT must be storage
every node reaches (an object store or a shared file system); the model travels
through Ray's object store.
"""
from __future__ import annotations

import sys
from typing import Sequence

from sing_ray.cli import run_pipeline


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``sing-ray render``'s flags, start or join Ray, run; returns the exit status."""
    return run_pipeline("render", argv)


if __name__ == "__main__":
    sys.exit(main())
