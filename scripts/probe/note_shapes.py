"""Probe: what the library's note analysis finds, per instrument, on a folder of notes.

Runs sing_ray.library.notes.analyse on every <instrument>-<pitch>-<velocity>.wav under a
folder (an NSynth audio/ folder, or a rendered library) and prints per instrument: how
many notes sustain, how many of those have a measured f0, the loop join (median, worst,
dB; <= 0 is no click), the median crossfade and release, and the time per note. Usage:
    python scripts/probe/note_shapes.py quickstart/nsynth/audio
"""
import collections
import glob
import os
import sys
import time

import numpy as np
import soundfile as sf

from sing_ray.library import notes

folder = sys.argv[1] if len(sys.argv) > 1 else "quickstart/nsynth/audio"
shapes, seconds = collections.defaultdict(list), []
for path in sorted(glob.glob(os.path.join(folder, "**", "*.wav"), recursive=True)):
    parts = os.path.basename(path)[:-4].rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        continue                      # not a note (a library's demo_scale.wav)
    instrument, pitch, _ = parts
    wav, _ = sf.read(path, dtype="float32")
    start = time.perf_counter()
    shapes[instrument].append(notes.analyse(wav, int(pitch))[1])
    seconds.append(time.perf_counter() - start)
print(f"{sum(map(len, shapes.values()))} notes under {folder}, {1000 * np.mean(seconds):.1f} ms per note")
print("| instrument | sustain | with f0 | join median / worst (dB) | crossfade median (s) | release median (s) |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for instrument, found in sorted(shapes.items()):
    held = [s for s in found if s.sustain]
    join = f"{np.median([s.loop_join for s in held]):.1f} / {max(s.loop_join for s in held):+.1f}" if held else "-"
    fade = f"{np.median([s.loop_crossfade for s in held]):.3f}" if held else "-"
    print(f"| {instrument} | {len(held)}/{len(found)} | {sum(s.f0 > 0 for s in held)} | {join} | {fade} | "
          f"{np.median([s.release for s in found]):.2f} |")
