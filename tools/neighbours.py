"""How well a held-out note's training neighbours predict its level; ``sing-ray evaluate`` reports at some pitches only.

The held-out test notes are (instrument, pitch) pairs no phase trains on; the nearest the
training split comes to one is the same instrument at the same velocity at the trained pitches
below and above it. This reads an ingested dataset (no Ray, no model) and, for each test note
at ``--pitches``, predicts its RMS level (dBFS) from those two neighbours' real levels,
linearly in pitch (the one neighbour there is at the ends of a range):

    python -m tools.neighbours DATASET [DATASET ...] [--pitches 36:84:4]

Prints, per dataset: the median error of that prediction against the real note (and the median
|error|, the largest), how many predictions fall under -60 dBFS (the near-silent line), how many
real notes do, and every note predicted more than 1.5 dB off or under the line.

``--eval`` reads ``sing-ray evaluate`` report folders instead, their ``evaluation_notes.csv``
restricted to the notes at ``--pitches`` and summarised by ``evaluate.summarize_group``: so that
a set rendered at denser pitches (``--pitches 36:84:2``) is scored on the same held-out notes as
the sparser one (the split is a hash of instrument and pitch, so those notes are held out in both).
"""
from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

import numpy as np

Levels = dict[tuple[str, int, int], tuple[float, str]]


def levels(dataset: str) -> Levels:
    """``{(instrument_str, pitch, velocity): (RMS dBFS, split)}`` of every note in the dataset."""
    from sing_ray.data.dataset import WAV_COLUMN
    from sing_ray.errors import UserError
    from sing_ray.evaluate import rms_dbfs
    from sing_ray.nsynth import SPLITS

    from ._notes import read_notes

    out: Levels = {}
    for split in SPLITS:
        try:
            notes = read_notes(dataset, split, columns=("instrument_str", "pitch", "velocity"))
        except UserError:
            continue                      # a split without notes
        for i, p, v, db in zip(notes["instrument_str"], notes["pitch"], notes["velocity"], rms_dbfs(notes[WAV_COLUMN])):
            out[(str(i), int(p), int(v))] = (float(db), split)
    return out


def predict(notes: Levels, instrument: str, pitch: int, velocity: int) -> float | None:
    """The level of (instrument, pitch, velocity) from its trained neighbours, linear in pitch."""
    trained = sorted(p for (i, p, v), (_, s) in notes.items() if i == instrument and v == velocity and s == "train")
    below, above = [p for p in trained if p < pitch], [p for p in trained if p > pitch]
    if below and above:
        lo, hi = below[-1], above[0]
        a, b = notes[(instrument, lo, velocity)][0], notes[(instrument, hi, velocity)][0]
        return a + (b - a) * (pitch - lo) / (hi - lo)
    if below or above:
        return notes[(instrument, below[-1] if below else above[0], velocity)][0]
    return None


def report_dataset(dataset: str, pitches: set[int]) -> None:
    from sing_ray.evaluate import NEAR_SILENT_DB

    notes = levels(dataset)
    errors, under, real_under = [], 0, 0
    for (i, p, v), (db, split) in sorted(notes.items()):
        if split != "test" or p not in pitches:
            continue
        guess = predict(notes, i, p, v)
        if guess is None:
            continue
        errors.append(guess - db)
        under += guess < NEAR_SILENT_DB
        real_under += db < NEAR_SILENT_DB
        if guess < NEAR_SILENT_DB or abs(guess - db) > 1.5:
            print(f"  {i}-{p:03d}-{v:03d}: from its neighbours {guess:.1f} dBFS, real {db:.1f}")
    if not errors:
        raise SystemExit(f"{dataset}: no test notes at those pitches with trained neighbours")
    print(f"{dataset}: {len(errors)} held-out notes; the neighbours' level minus the real note's: median "
          f"{statistics.median(errors):+.2f} dB (|{statistics.median(map(abs, errors)):.2f}|, largest "
          f"|{max(map(abs, errors)):.1f}|); under {NEAR_SILENT_DB:.0f} dBFS: {under} (the real notes: {real_under})")


def report_eval(folder: str, pitches: set[int]) -> None:
    from sing_ray.evaluate import NEAR_SILENT_DB, summarize_group

    path = Path(folder) / "evaluation_notes.csv"
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["pitch"]) in pitches]
    if not rows:
        raise SystemExit(f"{path}: no notes at those pitches")
    numeric = [k for k in ("spectral_l1", "spectral_l1_silence", "rms_db", "rms_db_real", "cents", "cents_real",
                           "lts_db", "lts_loud_db", "envelope_db") if k in rows[0]]
    notes = {k: np.array([float(r[k]) if r[k] != "" else np.nan for r in rows]) for k in numeric}
    s = summarize_group(notes)
    text = (f"{folder}: {s['num_notes']} notes; level {s['median_rms_db_diff']:+.2f} dB "
            f"(|{s['median_abs_rms_db_diff']:.2f}|); spectral L1 {s['spectral_l1_vs_silence']:.2f} x silence's; "
            f"near-silent {s['num_near_silent']} (real {s['num_near_silent_real']})")
    if "pitch_accuracy" in s:
        text += f"; in tune {100 * s['pitch_accuracy']:.1f} %"
        if "pitch_accuracy_real" in s:
            text += f" (real {100 * s['pitch_accuracy_real']:.1f} %)"
    if "median_lts_db" in s:
        text += f"; lts {s['median_lts_db']:.1f} dB"
    print(text)
    for r in rows:
        if float(r["rms_db"]) < NEAR_SILENT_DB:
            print(f"  {r['note_str']}: {float(r['rms_db']):.1f} dBFS, real {float(r['rms_db_real']):.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.neighbours", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("paths", nargs="+", metavar="DATASET_OR_REPORT")
    parser.add_argument("--pitches", default="36:84:4", help="the held-out notes' pitches to look at (LO:HI[:STEP])")
    parser.add_argument("--eval", action="store_true", help="the paths are `sing-ray evaluate` report folders")
    args = parser.parse_args(argv)

    from sing_ray.errors import UserError
    from sing_ray.grid import parse_pitches

    try:
        pitches = set(parse_pitches(args.pitches))
    except UserError as err:
        parser.error(str(err))
    for path in args.paths:
        (report_eval if args.eval else report_dataset)(path, pitches)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
