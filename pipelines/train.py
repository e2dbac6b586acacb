"""Train SING's three phases, as a Ray job.

    ray job submit --working-dir . -- python -m pipelines.train --dataset /data/nsynth.ds --preset paper --workers 4 --gpu

The flags are those of ``sing-ray train``. Under ``ray job submit`` the job joins
the cluster (RAY_ADDRESS); elsewhere it starts a local Ray. The dataset must be
reachable from every node (a URI or a shared folder), ``--storage`` too (a shared
folder), and ``--tracking-uri`` should name the cluster's MLflow server.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from sing_ray.commands import train as command
from sing_ray.config import ConfigError
from sing_ray.errors import UserError
from sing_ray.runtime import setup_logging


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, start or join Ray, train, print the model URI and the MLflow run; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.train")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    command.configure(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        return command.run(args)
    except (UserError, ConfigError) as err:
        print(f"pipelines.train: error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 2)


if __name__ == "__main__":
    sys.exit(main())
