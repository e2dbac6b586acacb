"""Where a model's notes differ from the real ones: spectral L1 by bins and by instrument, level over time.

Renders every note of a split with the checkpoint as ``sing-ray evaluate`` does (a SING from
its symbols, an autoencoder from the real note; ``evaluate.build_note_model``), without Ray:

    python -m tools.where MODEL.pt DATASET [--split test] [--partials 64] [--envelopes NOTE_STR,...]

1. The paper's spectral L1 (log(1 + |STFT|^2), 1024 / 256), the model's beside an all-zero
   output's, split into the bins within 1.5 bins of a partial k * f0 (f0 from the MIDI pitch,
   k up to --partials), the bins between them, and the bins above the last partial.
2. The same ratio, model / silence, per instrument.
3. With --envelopes: each named note's level (dBFS of 1,024-sample frames every 256) averaged
   over stretches of frames: attack, body, decay, release, the generated against the real.
"""
from __future__ import annotations

import argparse

import numpy as np

STRETCHES = ((0, 4), (4, 16), (16, 32), (32, 63), (63, 125), (125, 188), (188, 200), (200, 250))
SAMPLE_RATE, N_FFT = 16000, 1024


def bin_errors(model_lp: np.ndarray, real_lp: np.ndarray, silence_lp: np.ndarray, pitches, partials: int) -> dict:
    """Sums of |log-power difference| (model's, silence's) over the bins at, between and above the partials.

    Args:
        model_lp, real_lp: (N, bins, frames) log power; silence_lp: (1, bins, frames).
        pitches: (N,) MIDI pitches.
    Returns:
        ``{part: (model's sum, silence's sum)}`` over all notes.
    """
    err, err0 = np.abs(model_lp - real_lp), np.abs(silence_lp - real_lp)
    bins = np.arange(real_lp.shape[1]) * SAMPLE_RATE / N_FFT
    parts = {"at the partials": [0.0, 0.0], "between them": [0.0, 0.0], "above the last": [0.0, 0.0]}
    for i, midi in enumerate(pitches):
        f0 = 440.0 * 2 ** ((int(midi) - 69) / 12)
        k = bins / f0
        near = np.abs(k - np.round(k)) * f0 <= 1.5 * SAMPLE_RATE / N_FFT
        above = k > partials + 0.5
        for name, mask in zip(parts, (near & ~above, ~near & ~above, above)):
            parts[name][0] += err[i][mask].sum()
            parts[name][1] += err0[i][mask].sum()
    return parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.where", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("model", help="a SING (finetune) or autoencoder checkpoint")
    parser.add_argument("dataset", help="an ingested dataset")
    parser.add_argument("--split", default="test")
    parser.add_argument("--partials", type=int, default=64, help="partials counted at k * f0, k = 1..N")
    parser.add_argument("--envelopes", default="", metavar="NOTE_STR,...", help="notes whose level over time to print")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)

    import torch

    from sing_ray.data.dataset import WAV_COLUMN
    from sing_ray.dsp import log_power, log_rms
    from sing_ray.evaluate import build_note_model

    from ._notes import batched, read_notes

    torch.set_num_threads(args.threads)
    notes = read_notes(args.dataset, args.split)
    wav, names, ins = notes[WAV_COLUMN], list(notes["note_str"]), list(notes["instrument_str"])
    fn, _ = build_note_model(args.model)
    out = batched(fn, notes)

    model, real = log_power(torch.as_tensor(out)).numpy(), log_power(torch.as_tensor(wav)).numpy()
    silence = log_power(torch.zeros(1, wav.shape[1])).numpy()
    err, err0 = np.abs(model - real), np.abs(silence - real)
    print(f"{len(names)} {args.split} notes: spectral L1 {err.mean():.4f}, silence's {err0.mean():.4f} "
          f"({err.mean() / err0.mean():.2f} x)")
    for name, (m, s) in bin_errors(model, real, silence, notes["pitch"], args.partials).items():
        print(f"  {name:16s} {m / err.size:.4f}, silence's {s / err.size:.4f}")
    print("model / silence per instrument:")
    for name in sorted(set(ins)):
        idx = [i for i, x in enumerate(ins) if x == name]
        print(f"  {name:26s} {err[idx].mean() / err0[idx].mean():.2f} ({err[idx].mean():.4f} of {err0[idx].mean():.4f})")

    db = 20 / np.log(10)
    for note in filter(None, args.envelopes.split(",")):
        if note not in names:
            parser.error(f"--envelopes: {note} is not a {args.split} note of {args.dataset}")
        i = names.index(note)
        a = log_rms(torch.as_tensor(out[i])).numpy() * db
        b = log_rms(torch.as_tensor(wav[i])).numpy() * db
        whole = [10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-20) for x in (out[i], wav[i])]
        print(f"{note}: {whole[0]:.1f} dBFS, the real note {whole[1]:.1f}")
        print("  frames    " + " ".join(f"{s}-{e}".rjust(7) for s, e in STRETCHES))
        print("  real      " + " ".join(f"{b[s:e].mean():7.1f}" for s, e in STRETCHES))
        print("  generated " + " ".join(f"{a[s:e].mean():7.1f}" for s, e in STRETCHES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
