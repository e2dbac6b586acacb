"""How well a held-out note's train neighbours predict its level, and a report on some notes only.

The held-out test notes are (instrument, pitch) pairs no phase trains on; the nearest the
train split comes to one is the same instrument at the same velocity at the trained pitches
below and above it. This reads an ingested dataset's Parquet directly (no Ray, no model) and,
for each test note at ``--pitches``, predicts its RMS level (dBFS) from those two neighbours'
real levels, linearly in pitch (the one neighbour there is at the ends of a range):

    python scripts/probe/neighbours.py DATASET [DATASET ...] [--pitches 36:84:4]

Prints, per dataset: the median error of that prediction against the real note (and the median
|error|, the largest), how many predictions fall under -60 dBFS (the near-silent line), how many
real notes do, and every note predicted more than 1.5 dB off or under the line.

``--eval DIR [DIR ...]`` scores ``sing-ray evaluate`` reports instead, their
``evaluation_notes.csv`` restricted to the notes at ``--pitches``: so that a set rendered at
denser pitches (``--pitches 36:84:2``) is scored on the same held-out notes as the sparser one
(the split is a hash of instrument and pitch, so those notes are held out in both).
"""
from __future__ import annotations

import argparse
import csv
import glob
import statistics
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sing_ray.data.dataset import decode_audio
from sing_ray.evaluate import NEAR_SILENT_DB, rms_dbfs, summarize_group
from sing_ray.soundfont import parse_pitches


def levels(dataset: str) -> dict[tuple[str, int, int], tuple[float, str]]:
    """``{(instrument_str, pitch, velocity): (RMS dBFS, split)}`` of every note in the dataset."""
    files = sorted(glob.glob(f"{dataset}/notes/*.parquet"))
    if not files:
        raise SystemExit(f"{dataset}: no notes/*.parquet (an ingested dataset folder?)")
    table = pa.concat_tables([pq.read_table(f, columns=["instrument_str", "pitch", "velocity", "split", "audio"])
                              for f in files])
    rms_db = rms_dbfs(decode_audio(table.column("audio")))
    keys = zip(table.column("instrument_str").to_pylist(), table.column("pitch").to_pylist(),
               table.column("velocity").to_pylist(), table.column("split").to_pylist())
    return {(i, p, v): (float(db), s) for (i, p, v, s), db in zip(keys, rms_db)}


def predict(notes: dict, instrument: str, pitch: int, velocity: int) -> float | None:
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
    path = Path(folder) / "evaluation_notes.csv"
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["pitch"]) in pitches]
    if not rows:
        raise SystemExit(f"{path}: no notes at those pitches")
    numeric = ("spectral_l1", "spectral_l1_silence", "rms_db", "rms_db_real", "cents", "cents_real")
    notes = {k: np.array([float(r[k]) if r[k] != "" else np.nan for r in rows]) for k in numeric}
    s = summarize_group(notes)
    print(f"{folder}: {s['num_notes']} notes; in tune {100 * s['pitch_accuracy']:.1f} % (real "
          f"{100 * s['pitch_accuracy_real']:.1f} %); level {s['median_rms_db_diff']:+.2f} dB "
          f"(|{s['median_abs_rms_db_diff']:.2f}|); spectral L1 {s['spectral_l1_vs_silence']:.2f} x silence's; "
          f"near-silent {s['num_near_silent']} (real {s['num_near_silent_real']})")
    for r in rows:
        if float(r["rms_db"]) < NEAR_SILENT_DB:
            print(f"  {r['note_str']}: {float(r['rms_db']):.1f} dBFS, real {float(r['rms_db_real']):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", metavar="DATASET_OR_REPORT")
    parser.add_argument("--pitches", default="36:84:4", help="the held-out notes' pitches to look at (LO:HI[:STEP])")
    parser.add_argument("--eval", action="store_true", help="the paths are `sing-ray evaluate` report folders")
    args = parser.parse_args()
    pitches = set(parse_pitches(args.pitches))
    for path in args.paths:
        (report_eval if args.eval else report_dataset)(path, pitches)


if __name__ == "__main__":
    main()
