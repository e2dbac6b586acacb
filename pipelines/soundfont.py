"""Render an NSynth-layout dataset from a SoundFont, as a Ray job.

    ray job submit --working-dir . -- python -m pipelines.soundfont --out /data/fluidr3 --workers 8

The flags are those of ``sing-ray data soundfont``. Every input is checked
first; then, if any note is left to render, Ray is joined (``RAY_ADDRESS``, set
by ``ray job submit``) or started locally. The workers run on the driver's
node and write the folder there; the SoundFont must be at ``--sf2`` on it.
"""
from __future__ import annotations

import sys
from typing import Sequence

from sing_ray.cli import run_pipeline


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``sing-ray data soundfont``'s flags, start or join Ray, run; returns the exit status."""
    return run_pipeline("soundfont", argv)


if __name__ == "__main__":
    sys.exit(main())
