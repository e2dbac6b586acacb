"""Timbre of a checkpoint beside the nearest key, on held-out and training notes, without Ray.

The quick comparison of training runs that docs/quality.md's Timbre section and
docs/quality-diary.md's section 18 made: for the held-out (test) notes and a sample of
training notes, the model's long-term spectrum distance (all bands, loud bands), envelope
distance, level and spectral L1 beside what the nearest-key sampler (the same instrument and
velocity at the nearest training pitch, resampled) and silence get on the same notes, overall
and per family:

    python -m tools.timbre CHECKPOINT [DATASET] [--train-notes 70] [--pitches 36:84:4] [--save SAVE.npz]

The figures are ``sing-ray evaluate``'s own (``note_metrics``, ``nearest_key_metrics``,
``summarize``) on the same notes: every held-out note, and the training notes chosen by its
stable sample (``--train-notes``). Pitch tracking is left out unless ``--pitch``: it takes most
of ``sing-ray evaluate``'s time and says nothing of timbre.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

DEFAULT_DATASET = "quickstart/dataset"


def score_notes(fn, dataset: str, notes: dict, train_meta: dict, with_pitch: bool) -> tuple[dict, dict]:
    """Score the model and the nearest key on ``notes`` (:func:`tools._notes.read_notes`'s columns).

    ``train_meta``: the training split's metadata, where each note's nearest key is looked for.

    Returns:
        ``(columns, audio)``: per-note metrics as ``sing-ray evaluate`` writes them (the model's,
        ``nk_*`` the nearest key's, ``*_silence`` an all-zero output's), and ``real``,
        ``generated``, ``nearest`` (N, T).
    """
    from sing_ray.data.dataset import WAV_COLUMN
    from sing_ray.evaluate import (NEAREST_KEY_SPLIT, NearestKeys, nearest_key_metrics, note_metrics, plan_nearest_keys,
                                   shift_nearest_keys)

    from ._notes import COLUMNS, batched, read_notes

    real = notes[WAV_COLUMN]
    generated = batched(fn, notes)
    columns = {k: notes[k] for k in COLUMNS}
    columns.update(note_metrics(generated, real, notes["pitch"], with_pitch=with_pitch,
                                with_reference_pitch=with_pitch, with_embedding=False))
    sources = plan_nearest_keys(columns, train_meta)
    plan = {str(t): s for t, s in zip(columns["note_str"], sources) if s is not None}
    wanted = sorted(set(plan.values()))
    keys = NearestKeys(plan, {}, {})
    if wanted:
        fetched = read_notes(dataset, NEAREST_KEY_SPLIT, wanted)
        keys = NearestKeys(plan, dict(zip(wanted, fetched[WAV_COLUMN])),
                           {s: int(p) for s, p in zip(wanted, fetched["pitch"])})
    nearest, _ = shift_nearest_keys(keys, columns["note_str"], columns["pitch"], real.shape[1])
    columns.update(nearest_key_metrics(real, columns["note_str"], columns["pitch"], keys, lts_db=columns["lts_db"],
                                       with_pitch=with_pitch, with_embedding=False, shifted=nearest))
    return columns, {"real": real, "generated": generated, "nearest": nearest}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.timbre", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("checkpoint", help="a SING (finetune) or autoencoder checkpoint")
    parser.add_argument("dataset", nargs="?", default=DEFAULT_DATASET, help="the ingested dataset it was trained on")
    parser.add_argument("--split", default="test", help="the held-out split")
    parser.add_argument("--train-notes", type=int, default=70, metavar="N",
                        help="training notes scored beside the held-out ones (0: none)")
    parser.add_argument("--pitches", default=None, metavar="N|LO:HI[:STEP],...",
                        help="only the held-out notes at these pitches (e.g. a denser set's held-out notes at "
                             "the sparser set's pitches, 36:84:4)")
    parser.add_argument("--pitch", action="store_true", help="also track the pitch (slow)")
    parser.add_argument("--save", default=None, metavar="NPZ",
                        help="keep the held-out notes' real, generated and nearest-key audio")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)

    import torch

    from sing_ray.data.dataset import read_split_metadata
    from sing_ray.errors import UserError
    from sing_ray.evaluate import (FIT_COLUMNS, NEAREST_KEY_SPLIT, TIMBRE_COLUMNS, build_note_model, markdown_table,
                                   summarize)
    from sing_ray.grid import parse_pitches

    from ._notes import sample_notes

    torch.set_num_threads(args.threads)
    try:
        pitches = None if args.pitches is None else set(parse_pitches(args.pitches))
    except UserError as err:
        parser.error(str(err))
    started = time.perf_counter()
    fn, _ = build_note_model(args.checkpoint)
    train_meta = read_split_metadata(args.dataset, NEAREST_KEY_SPLIT)
    held = sample_notes(args.dataset, args.split)
    if pitches is not None:
        keep = np.isin(held["pitch"].astype(int), sorted(pitches))
        held = {k: v[keep] for k, v in held.items()}
        if not keep.any():
            parser.error(f"--pitches {args.pitches}: no {args.split} note of {args.dataset} at those pitches")
    sides = {f"held-out ({args.split})": held}
    if args.train_notes:
        sides["training notes"] = sample_notes(args.dataset, "train", args.train_notes)
    overall, by_family = {}, {}
    for name, notes in sides.items():
        columns, audio = score_notes(fn, args.dataset, notes, train_meta, args.pitch)
        summary = summarize(columns)
        overall[name] = summary["overall"]
        by_family.update({f"{family}, {name}": row for family, row in summary["by_family"].items()})
        if args.save and name.startswith("held-out"):
            np.savez(args.save, **audio, pitch=columns["pitch"], note=columns["note_str"].astype(str))
    print(f"{args.checkpoint} on {args.dataset} ({time.perf_counter() - started:.0f} s)\n")
    print(markdown_table(overall, "scored", FIT_COLUMNS), "\n")
    everything = {f"all, {name}": row for name, row in overall.items()} | dict(sorted(by_family.items()))
    print(markdown_table(everything, "family, scored", TIMBRE_COLUMNS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
