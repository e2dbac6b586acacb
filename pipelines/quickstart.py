"""The whole pipeline at small scale, as a job: ``python -m pipelines.quickstart [--scale smallest]``.

Runs under ``ray job submit --working-dir . -- python -m pipelines.quickstart ...`` or, unchanged,
as a plain script that starts a local Ray. Flags: ``sing-ray quickstart --help``.
"""
from __future__ import annotations

import sys

from sing_ray.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    return cli_main(["quickstart", *(sys.argv[1:] if argv is None else argv)], program=argv is None)


if __name__ == "__main__":
    sys.exit(main())
