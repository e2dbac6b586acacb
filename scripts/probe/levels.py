"""Where a run's notes lose their level: each phase's notes against the real ones, in dBFS.

Reads the ingested dataset's Parquet directly (no Ray) and renders the notes of a split three
ways: the autoencoder reconstructing the real note, the SING before fine-tuning (phase 1's
decoder playing the LSTM's frames) and the fine-tuned SING:

    python scripts/probe/levels.py RUN_FOLDER DATASET [--split test] [--select guitar,mallet]
                                   [--frames NOTE_STR,...]

Prints each note's RMS level (dBFS over the whole note) and, per phase, the median difference
from the real notes and the median |difference|, and the spectral L1 (Table 1's) against an
all-zero output's, over all the notes and per instrument. With --frames (harmonic frames only): for each
named note, the level of the encoder's frames and of the LSTM's (the log RMS of the partials
each frame plays, ``frame_levels``) over stretches of the note, and the four loudest partials
of frame 10 in each.
"""
from __future__ import annotations

import argparse
import glob

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from sing_ray.checkpoint import load_model
from sing_ray.commands.bench_quality import sing_at
from sing_ray.data.dataset import decode_audio
from sing_ray.evaluate import build_note_model, note_metrics
from sing_ray.losses import frame_levels
from sing_ray.models.autoencoder import HARMONIC_SCALE
from sing_ray.nsynth import velocity_index

STRETCHES = ((9, 16), (16, 32), (32, 63), (63, 125), (125, 188), (188, 250))
DB = 20 / np.log(10)


def rms_db(x: np.ndarray) -> np.ndarray:
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2, axis=-1) + 1e-20)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="the run folder (runs/NAME), with models/{autoencoder,sequence,finetune}.pt")
    p.add_argument("dataset")
    p.add_argument("--split", default="test")
    p.add_argument("--select", default="", help="only notes whose note_str holds one of these, comma-separated")
    p.add_argument("--frames", default="", help="notes (note_str) whose frame levels to print")
    args = p.parse_args()
    torch.set_num_threads(1)

    table = pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(f"{args.dataset}/notes/part-{args.split}-*.parquet"))])
    names = table.column("note_str").to_pylist()
    keep = [i for i, n in enumerate(names) if not args.select or any(s in n for s in args.select.split(","))]
    table, names = table.take(keep), [names[i] for i in keep]
    wav = decode_audio(table.column("audio"))
    ins = table.column("instrument_str").to_pylist()
    pitch, vel = table.column("pitch").to_pylist(), table.column("velocity").to_pylist()
    models = f"{args.run}/models"
    before = sing_at(open(f"{models}/sequence.pt", "rb").read(), open(f"{models}/autoencoder.pt", "rb").read())
    levels, l1 = {"real": rms_db(wav)}, {}
    for name, path in (("autoencoder", f"{models}/autoencoder.pt"), ("before finetune", before),
                       ("finetuned", f"{models}/finetune.pt")):
        fn, _ = build_note_model(path)
        out = np.concatenate([fn(ins[i:i + 16], pitch[i:i + 16], vel[i:i + 16], wav[i:i + 16])
                              for i in range(0, len(names), 16)])
        levels[name] = rms_db(out)
        scores = note_metrics(out, wav, with_pitch=False, with_reference_pitch=False, with_embedding=False)
        l1[name] = (scores["spectral_l1"], scores["spectral_l1_silence"])
    print(f"{'note':34s} " + " ".join(f"{k:>15s}" for k in levels))
    for i, n in enumerate(names):
        print(f"{n:34s} " + " ".join(f"{levels[k][i]:15.1f}" for k in levels))
    print(f"{len(names)} {args.split} notes, level against the real notes' (dB):")
    for k in list(levels)[1:]:
        d = levels[k] - levels["real"]
        print(f"  {k:16s} median {np.median(d):+.1f}, median |difference| {np.median(np.abs(d)):.1f}")

    print(f"spectral L1 / silence's: {'':22s}" + " ".join(f"{k:>15s}" for k in l1))
    for group in ["all", *sorted(set(ins))]:
        mask = np.array([group == "all" or x == group for x in ins])
        print(f"  {group:45s}" + " ".join(f"{l1[k][0][mask].sum() / l1[k][1][mask].sum():15.2f}" for k in l1))

    for note in filter(None, args.frames.split(",")):
        i = names.index(note)
        autoencoder, _ = load_model(f"{models}/autoencoder.pt")
        sequence, ckpt = load_model(f"{models}/sequence.pt")
        vocab = list(ckpt["extra"]["instruments"])
        with torch.no_grad():
            enc = autoencoder.encode(torch.as_tensor(wav[i:i + 1]), torch.tensor(pitch[i:i + 1]))
            lstm = sequence(torch.tensor([vocab.index(ins[i])]), torch.tensor(pitch[i:i + 1]),
                            torch.tensor([velocity_index(vel[i])]))
        print(f"{note}: frame levels (dB) over frames " + " ".join(f"{a}-{b}" for a, b in STRETCHES))
        for name, frames in (("encoder", enc), ("LSTM", lstm)):
            level = frame_levels(frames, HARMONIC_SCALE)[0] * DB
            top = (frames[0, :, 10] * HARMONIC_SCALE * DB).topk(4).values
            print(f"  {name:8s}" + " ".join(f"{level[a:b].mean():7.1f}" for a, b in STRETCHES)
                  + "   loudest partials of frame 10: " + " ".join(f"{v:.1f}" for v in top.tolist()))


if __name__ == "__main__":
    main()
