"""``sing-ray bench library``: what writing a playable library costs per note, against rendering alone.

In one process on one thread, over the same notes: the model's forward pass (the
fast path the render actors run, batch 32), the plain 16-bit encoding a render
always did, the library's per-note work (the shape analysis, crossfade and ``smpl``
chunk of :func:`sing_ray.library.notes.encode`, and the spectrogram PNG), and the
driver's per-library work (every sampler format and the page, written by
:func:`sing_ray.library.writer.write_library_files`, per note of the library).
Each is printed in ms per note and as a share of the forward pass of each preset.
The notes are the model's (untrained: noise-like, mostly sustaining) and, with
``--real FOLDER``, real WAV notes too (the analysis does more on pitched notes).
"""
from __future__ import annotations

import argparse
import glob
import os
import tempfile
import time
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's arguments."""
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.description = __doc__.split("\n\n", 1)[1].replace("``", "")
    parser.add_argument("--presets", default="small,paper", metavar="P,...",
                        help="model presets whose forward pass the library work is compared with")
    parser.add_argument("--notes", type=int, default=64, metavar="N", help="notes per measurement")
    parser.add_argument("--real", default=None, metavar="FOLDER",
                        help="also analyse real notes: WAV files under FOLDER (e.g. an NSynth audio/ folder)")
    parser.add_argument("--formats", default="sfz,dspreset,sf2", metavar="NAME,...", help="sampler formats written")


def _per_note(fn, items) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - start) / max(1, len(items))


def run(args: argparse.Namespace) -> int:
    """Measure and print the table; returns 0."""
    import numpy as np
    import soundfile as sf
    import torch

    from ..generate import Generator
    from ..library import notes, page, parse_formats
    from ..library.writer import write_library_files
    from ..audio import encode_note, note_stats
    from ..data.storage import resolve
    from ..render import note_path
    from .bench_render import _checkpoint

    from ..errors import UserError

    if args.notes < 1:
        raise UserError(f"--notes must be >= 1, got {args.notes}")
    torch.set_num_threads(1)
    formats = parse_formats(args.formats)
    pitches = [21 + (i * 7) % 88 for i in range(args.notes)]
    forward, wavs = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for preset in [p.strip() for p in args.presets.split(",") if p.strip()]:
            gen = Generator.from_checkpoint(_checkpoint(Path(tmp), preset))
            names = [gen.instruments[i % len(gen.instruments)] for i in range(args.notes)]
            gen.generate(names[:8], pitches[:8], [100] * 8)              # warm-up
            start = time.perf_counter()
            out = []
            for i in range(0, args.notes, 32):
                out += list(gen.generate(names[i:i + 32], pitches[i:i + 32], [100] * len(names[i:i + 32])))
            forward[preset] = (time.perf_counter() - start) / args.notes
            wavs = wavs if wavs is not None else (out, names)
            print(f"forward {preset}: {1000 * forward[preset]:.1f} ms per note", flush=True)
        generated, names = wavs
        sets = {"model notes": [(np.asarray(w, dtype=np.float32), p) for w, p in zip(generated, pitches)]}
        if args.real:
            found = sorted(glob.glob(os.path.join(args.real, "**", "*.wav"), recursive=True))
            files = found[:: max(1, len(found) // args.notes)][: args.notes]       # spread over the instruments
            sets["real notes"] = [(sf.read(f, dtype="float32")[0], int(Path(f).stem.split("-")[-2])) for f in files]
        rows = []
        for label, items in sets.items():
            plain = _per_note(lambda it: encode_note(it[0], "wav"), items)
            shaped = [notes.encode(w, p, "wav") for w, p in items]
            library = _per_note(lambda it: notes.encode(it[0], it[1], "wav"), items)
            png = _per_note(lambda s: page.note_png(s[1]), shaped)
            sustain = sum(s[2].sustain for s in shaped)
            rows.append((f"{label}: plain 16-bit encoding (every render)", plain))
            rows.append((f"{label}: shape, crossfade, encoding, smpl ({sustain}/{len(items)} sustain)", library))
            rows.append((f"{label}: extra for the library note (shape - plain)", library - plain))
            rows.append((f"{label}: spectrogram PNG", png))
        # The driver's part: every format and the page over a library of the model notes.
        out = resolve(os.path.join(tmp, "lib"))
        manifest = []
        for i, (w, p) in enumerate(sets["model notes"]):
            name = f"{names[i]}"
            rel = note_path(name, p, 100, "wav")
            out.makedirs(name)
            data, pcm, shape = notes.encode(w, p, "wav")
            out.write_atomic(data, rel)
            out.write_atomic(page.note_png(pcm), page.png_path(rel))
            manifest.append({"instrument": name, "pitch": p, "velocity": 100, "path": rel, "mix": "",
                             **note_stats(pcm, data), **shape.row()})
        start = time.perf_counter()
        write_library_files(out, manifest, formats, "wav")
        rows.append((f"driver: {', '.join(formats)} and index.html, per note", (time.perf_counter() - start)
                     / len(manifest)))
    presets = list(forward)
    rows = [(f"forward pass, {p} (rendering alone)", forward[p]) for p in presets] + rows
    print()
    print("| per note, one thread | ms | " + " | ".join(f"share of {p} forward" for p in presets) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in presets) + " |")
    for label, seconds in rows:
        shares = " | ".join(f"{100 * seconds / forward[p]:.1f} %" for p in presets)
        print(f"| {label} | {1000 * seconds:.2f} | {shares} |")
    return 0
