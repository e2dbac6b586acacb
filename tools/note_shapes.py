"""What the library's note analysis finds, per instrument, on a folder of notes.

Runs ``sing_ray.library.notes.analyse`` (the sustain, f0, loop and release that ``sing-ray
render`` writes into a library's sampler files) on every ``<instrument>-<pitch>-<velocity>.wav``
under a folder (an NSynth ``audio/`` folder, or a rendered library), and prints per instrument,
as a Markdown table: how many notes sustain, how many of those have a measured f0, the loop
join (median, worst, dB; <= 0 is no click), the median crossfade and release, and the time
per note:

    python -m tools.note_shapes [FOLDER]
"""
from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.note_shapes", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("folder", nargs="?", default="quickstart/nsynth/audio",
                        help="a folder of NSynth-named WAV notes (searched recursively)")
    args = parser.parse_args(argv)

    import soundfile as sf

    from sing_ray.library import notes

    shapes, seconds = collections.defaultdict(list), []
    for path in sorted(Path(args.folder).rglob("*.wav")):
        parts = path.stem.rsplit("-", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            continue                      # not a note (a library's demo_scale.wav)
        instrument, pitch, _ = parts
        wav, _ = sf.read(path, dtype="float32")
        start = time.perf_counter()
        shapes[instrument].append(notes.analyse(wav, int(pitch))[1])
        seconds.append(time.perf_counter() - start)
    if not seconds:
        parser.error(f"{args.folder}: no <instrument>-<pitch>-<velocity>.wav notes under it")
    print(f"{len(seconds)} notes under {args.folder}, {1000 * np.mean(seconds):.1f} ms per note")
    print("| instrument | sustain | with f0 | join median / worst (dB) | crossfade median (s) | release median (s) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for instrument, found in sorted(shapes.items()):
        held = [s for s in found if s.sustain]
        join = f"{np.median([s.loop_join for s in held]):.1f} / {max(s.loop_join for s in held):+.1f}" if held else "-"
        fade = f"{np.median([s.loop_crossfade for s in held]):.3f}" if held else "-"
        print(f"| {instrument} | {len(held)}/{len(found)} | {sum(s.f0 > 0 for s in held)} | {join} | {fade} | "
              f"{np.median([s.release for s in found]):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
