"""Render a sample library, as a Ray job.

    ray job submit --working-dir . -- python -m pipelines.render --model models:/sing/1 --out s3://bucket/lib

The flags are those of ``sing-ray render``. Under ``ray job submit`` the job joins
the cluster (RAY_ADDRESS); elsewhere it starts a local Ray. OUT must be storage
every node reaches (an object store or a shared file system); the model travels
through Ray's object store.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from sing_ray.commands import render as command
from sing_ray.config import ConfigError
from sing_ray.errors import UserError
from sing_ray.runtime import setup_logging


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, start or join Ray, render, print where the library went; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.render")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    command.configure(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        return command.run(args)
    except (UserError, ConfigError) as err:
        print(f"pipelines.render: error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 2)


if __name__ == "__main__":
    sys.exit(main())
