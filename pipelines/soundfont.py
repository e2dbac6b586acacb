"""Render an NSynth-layout dataset from a SoundFont, as a Ray job.

    ray job submit --working-dir . -- python -m pipelines.soundfont --out /data/fluidr3 --workers 8

The flags are those of ``sing-ray data soundfont``. Every input is checked
first; then, if any note is left to render, Ray is joined (``RAY_ADDRESS``, set
by ``ray job submit``) or started locally. The workers run on the driver's
node and write the folder there; the SoundFont must be at ``--sf2`` on it.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from sing_ray.commands import soundfont as command
from sing_ray.errors import UserError
from sing_ray.runtime import setup_logging


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, render (joining or starting Ray when there is work); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.soundfont")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    command.configure(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        return command.run(args)
    except UserError as err:
        print(f"pipelines.soundfont: error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
