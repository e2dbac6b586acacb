"""Ingest an NSynth-layout folder into a Parquet dataset, as a Ray job.

    ray job submit --working-dir . -- python -m pipelines.ingest --source /data/nsynth-train --out /data/nsynth-train.ds

The flags are those of ``sing-ray data ingest``. Under ``ray job submit`` the
job joins the cluster (RAY_ADDRESS); elsewhere it starts a local Ray. SOURCE
and DATASET must be reachable from every node: a shared folder or a URI.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from sing_ray.commands import ingest as command
from sing_ray.errors import UserError
from sing_ray.runtime import setup_logging


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, start or join Ray, ingest, print the summary; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.ingest")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    command.configure(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        return command.run(args)
    except UserError as err:
        print(f"pipelines.ingest: error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
