"""Where a run's notes lose their level: each phase's notes against the real ones, in dBFS.

Renders the notes of a split three ways, without Ray: the autoencoder reconstructing the real
note, SING before fine-tuning (phase 1's decoder playing the sequence phase's frames) and the
fine-tuned SING, each as ``sing-ray evaluate`` renders a checkpoint:

    python -m tools.levels RUN_FOLDER DATASET [--split test] [--select guitar,mallet]

Prints each note's RMS level (dBFS over the whole note) and, per phase, the median difference
from the real notes and the median |difference|, and the spectral L1 (Table 1's) against an
all-zero output's, over all the notes and per instrument.
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np


def phase_models(run: Path) -> dict[str, bytes]:
    """The run's notes makers by phase, as checkpoint bytes: its autoencoder, SING before and after fine-tuning.

    SING before fine-tuning is phase 1's decoder playing the sequence phase's LSTM, assembled as
    the finetune phase starts it (``checkpoint.sing_from_phases``).
    """
    import torch

    from sing_ray.checkpoint import load_checkpoint, make_checkpoint, sing_from_phases

    models = run / "models"
    missing = [p for p in ("autoencoder.pt", "sequence.pt", "finetune.pt") if not (models / p).is_file()]
    if missing:
        raise SystemExit(f"{run}: no {', '.join(missing)} under models/ (a finished `sing-ray train` run folder?)")
    sequence, autoencoder = load_checkpoint(models / "sequence.pt"), load_checkpoint(models / "autoencoder.pt")
    buffer = io.BytesIO()
    torch.save(make_checkpoint(sing_from_phases(sequence, autoencoder), config=sequence["config"], phase="sequence",
                               epoch=sequence["epoch"], extra={"instruments": sequence["extra"]["instruments"]}), buffer)
    return {"autoencoder": (models / "autoencoder.pt").read_bytes(), "before finetune": buffer.getvalue(),
            "finetuned": (models / "finetune.pt").read_bytes()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.levels", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("run", type=Path, help="the run folder (runs/NAME), with models/{autoencoder,sequence,finetune}.pt")
    parser.add_argument("dataset", help="the ingested dataset it was trained on")
    parser.add_argument("--split", default="test")
    parser.add_argument("--select", default="", help="only notes whose note_str holds one of these, comma-separated")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)

    import torch

    from sing_ray.data.dataset import WAV_COLUMN, read_split_metadata
    from sing_ray.evaluate import build_note_model, note_metrics, rms_dbfs

    from ._notes import batched, read_notes

    torch.set_num_threads(args.threads)
    names = [str(n) for n in read_split_metadata(args.dataset, args.split, ("note_str",))["note_str"]]
    select = [s for s in args.select.split(",") if s]
    names = [n for n in names if not select or any(s in n for s in select)]
    if not names:
        raise SystemExit(f"{args.dataset}: no {args.split} note matches --select {args.select!r}")
    notes = read_notes(args.dataset, args.split, names)
    wav, ins = notes[WAV_COLUMN], np.asarray(notes["instrument_str"]).astype(str)
    levels, l1 = {"real": rms_dbfs(wav)}, {}
    for name, checkpoint in phase_models(args.run).items():
        fn, _ = build_note_model(checkpoint)
        out = batched(fn, notes)
        levels[name] = rms_dbfs(out)
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
        mask = (ins == group) | (group == "all")
        print(f"  {group:45s}" + " ".join(f"{l1[k][0][mask].sum() / l1[k][1][mask].sum():15.2f}" for k in l1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
