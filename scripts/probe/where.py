"""Where a model's notes differ from the real ones: spectral L1 by bins and by instrument, and level over time.

Reads the ingested dataset's Parquet directly (no Ray) and renders every note of a split with the
checkpoint, as `sing-ray evaluate` does (a SING from its symbols, an autoencoder from the real note):

    python scripts/probe/where.py MODEL.pt DATASET [--split test] [--envelopes NOTE_STR,...]

1. The paper's spectral L1 (log(1 + |STFT|^2), 1024 / 256), the model's beside an all-zero
   output's, split into the bins within 1.5 bins of a partial k * f0 (f0 from the MIDI pitch,
   k up to --partials), the bins between them, and the bins above the last partial.
2. The same ratio, model / silence, per instrument.
3. With --envelopes: each named note's level (dBFS of 1,024-sample frames every 256) averaged
   over stretches of frames: attack, body, decay, release, the generated against the real.
"""
from __future__ import annotations

import argparse
import glob

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from sing_ray.data.dataset import decode_audio
from sing_ray.dsp import log_power, log_rms
from sing_ray.evaluate import build_note_model

STRETCHES = ((0, 4), (4, 16), (16, 32), (32, 63), (63, 125), (125, 188), (188, 200), (200, 250))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("dataset")
    p.add_argument("--split", default="test")
    p.add_argument("--partials", type=int, default=64)
    p.add_argument("--envelopes", default="")
    args = p.parse_args()
    torch.set_num_threads(1)

    table = pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(f"{args.dataset}/notes/part-{args.split}-*.parquet"))])
    wav = decode_audio(table.column("audio"))
    names, ins = table.column("note_str").to_pylist(), table.column("instrument_str").to_pylist()
    pitch, vel = table.column("pitch").to_pylist(), table.column("velocity").to_pylist()
    fn, _ = build_note_model(args.model)
    out = np.concatenate([fn(ins[i:i + 16], pitch[i:i + 16], vel[i:i + 16], wav[i:i + 16])
                          for i in range(0, len(names), 16)])

    model, real = log_power(torch.as_tensor(out)).numpy(), log_power(torch.as_tensor(wav)).numpy()
    silence = log_power(torch.zeros(1, wav.shape[1])).numpy()
    err, err0 = np.abs(model - real), np.abs(silence - real)
    bins = np.arange(real.shape[1]) * 16000 / 1024
    parts = {"at the partials": [], "between them": [], "above the last": []}
    for i, midi in enumerate(pitch):
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        k = bins / f0
        near = np.abs(k - np.round(k)) * f0 <= 1.5 * 16000 / 1024
        above = k > args.partials + 0.5
        for name, mask in zip(parts, (near & ~above, ~near & ~above, above)):
            parts[name].append((err[i][mask].sum(), err0[i][mask].sum()))
    total = err.size
    print(f"{len(names)} {args.split} notes: spectral L1 {err.mean():.4f}, silence's {err0.mean():.4f} "
          f"({err.mean() / err0.mean():.2f} x)")
    for name, sums in parts.items():
        m, s = (sum(x[j] for x in sums) / total for j in (0, 1))
        print(f"  {name:16s} {m:.4f}, silence's {s:.4f}")
    print("model / silence per instrument:")
    for name in sorted(set(ins)):
        idx = [i for i, x in enumerate(ins) if x == name]
        print(f"  {name:26s} {err[idx].mean() / err0[idx].mean():.2f} ({err[idx].mean():.4f} of {err0[idx].mean():.4f})")

    for note in filter(None, args.envelopes.split(",")):
        i = names.index(note)
        db = 20 / np.log(10)
        a = log_rms(torch.as_tensor(out[i])).numpy() * db
        b = log_rms(torch.as_tensor(wav[i])).numpy() * db
        whole = [10 * np.log10(np.mean(x ** 2) + 1e-20) for x in (out[i], wav[i])]
        print(f"{note}: {whole[0]:.1f} dBFS, the real note {whole[1]:.1f}")
        print("  frames    " + " ".join(f"{s}-{e}".rjust(7) for s, e in STRETCHES))
        print("  real      " + " ".join(f"{b[s:e].mean():7.1f}" for s, e in STRETCHES))
        print("  generated " + " ".join(f"{a[s:e].mean():7.1f}" for s, e in STRETCHES))


if __name__ == "__main__":
    main()
