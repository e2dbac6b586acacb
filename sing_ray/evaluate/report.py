"""The evaluation report: its definitions, its Markdown form, and the files written (Markdown, JSON, CSV).

Ray-free: a script that holds per-note columns (:func:`sing_ray.evaluate.note_metrics`) and their
summary (:func:`sing_ray.evaluate.summarize`) writes the same report as ``sing-ray evaluate``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import timbre
from .metrics import (EMBEDDING_DIM, EMBEDDING_EPS, EMBEDDING_HOP, EMBEDDING_N_FFT, EMBEDDING_N_MELS,
                      EMBEDDING_NAME, MRSTFT_EPS, MRSTFT_RESOLUTIONS, NEAR_SILENT_DB, PITCH_MIN_VOICED_FRAMES,
                      PITCH_RESOLUTION, PITCH_SEARCH_SEMITONES, PITCH_TOLERANCE_CENTS, PITCH_TRACK_RATE,
                      RMS_DB_FLOOR)
from .nearest_key import NEAREST_KEY_SPLIT
from .tables import LEVEL_COLUMNS, TIMBRE_COLUMNS, fit_table, listener_summary, listener_table, markdown_table


EMBEDDING_DESCRIPTION = (
    f"{EMBEDDING_NAME}: per note, the time mean and standard deviation of a {EMBEDDING_N_MELS}-band "
    f"log-mel spectrogram (n_fft {EMBEDDING_N_FFT}, hop {EMBEDDING_HOP}, Hann, Slaney mel 0-8 kHz, "
    f"log(mel power + {EMBEDDING_EPS:g})), {EMBEDDING_DIM} dimensions. A fixed signal-processing "
    "embedding with no learnt weights: NOT FAD-VGGish, not comparable with published FAD values.")
PITCH_DESCRIPTION = (
    f"librosa.pyin on the note upsampled to {PITCH_TRACK_RATE} Hz, searching ±{PITCH_SEARCH_SEMITONES} "
    f"semitones around the MIDI pitch (bins of {PITCH_RESOLUTION * 100:g} cents), f0 = median over voiced "
    f"frames; in tune = within {PITCH_TOLERANCE_CENTS:g} cents; a note with fewer than "
    f"{PITCH_MIN_VOICED_FRAMES} voiced frames counts as out of tune.")
MRSTFT_DESCRIPTION = (
    "mean over STFT sizes (n_fft, hop) " + ", ".join(f"({a}, {b})" for a, b in MRSTFT_RESOLUTIONS)
    + f" of spectral convergence + mean |log max(|S|, {MRSTFT_EPS:g}) - log max(|S_hat|, {MRSTFT_EPS:g})|.")

LOUDNESS_DESCRIPTION = (
    "RMS level of the whole 4 s note in dBFS (20 log10 RMS; a full-scale square wave is 0 dBFS; "
    f"digital silence is given {RMS_DB_FLOOR:g}); gen − real is the generated note's level minus "
    f"the real note's, per note, then the median; a generated note below {NEAR_SILENT_DB:g} dBFS "
    "is near-silent.")
SILENCE_DESCRIPTION = (
    "silence's L1 is Table 1's spectral L1 of an all-zero output against the same real notes; "
    "L1 / silence's is the model's mean spectral L1 over silence's: 1 or more means the model "
    "scores no better than outputting nothing.")

NEAREST_KEY_DESCRIPTION = (
    "the nearest-key sampler: for each note, the training split's note of the same instrument and velocity "
    "at the nearest pitch other than the note's own (the lower on a tie), resampled to the note's pitch as a "
    "sampler stretches its nearest key (soxr, shorter when shifted up), cut or zero-padded to 4 s, and scored "
    "against the real note with the same metrics. A note whose instrument has no other training pitch at "
    "that velocity has none: its nk_ columns are NaN, it is counted as missing and left out of the nearest "
    "key's figures. 'closer than the nearest key': the model's lts_db below the nearest key's, over the notes "
    "that have one.")
TRAIN_NOTES_DESCRIPTION = (
    "training notes: a stable hash sample of the training split scored the same way, beside the held-out "
    "notes: a model far better on its training notes than on held-out ones fits rather than generalises.")


def definitions() -> dict[str, Any]:
    """The report's ``definitions``: how each figure is computed, in words, and the thresholds used."""
    return {"embedding": EMBEDDING_DESCRIPTION, "pitch": PITCH_DESCRIPTION,
            "mrstft": MRSTFT_DESCRIPTION, "pitch_tolerance_cents": PITCH_TOLERANCE_CENTS,
            "loudness": LOUDNESS_DESCRIPTION, "silence": SILENCE_DESCRIPTION,
            "near_silent_db": NEAR_SILENT_DB, "rms_db_floor": RMS_DB_FLOOR,
            "timbre": timbre.DESCRIPTION, "nearest_key": NEAREST_KEY_DESCRIPTION,
            "train_notes": TRAIN_NOTES_DESCRIPTION}


def format_markdown(report: Mapping[str, Any]) -> str:
    """The Markdown form of an evaluation report (see :func:`evaluate_model`)."""
    summary = report["summary"]
    parts = [f"# Evaluation of {report['model']}", "",
             f"- dataset: `{report['dataset']}`, split `{report['split']}`, {report['num_notes']} notes"
             + (f" (of {report['split_size']})" if report.get("split_size") else ""),
             f"- model: {report.get('model_class', '?')}"
             + (f", phase {report['phase']}" if report.get("phase") else ""),
             f"- wall time: {report.get('seconds', 0):.1f} s", "",
             "## What a listener would notice", "", listener_summary(summary["overall"]), "",
             *_fit_section(report),
             "## Overall", "", markdown_table({"all": summary["overall"]}, ""), "",
             "## Per instrument family", "", markdown_table(summary["by_family"], "family"), "",
             *_level_table(summary["by_family"], "family"),
             *_timbre_table(summary["by_family"], "family"),
             "## Per pitch octave (C4 = MIDI 60 starts octave 4)", "",
             markdown_table(summary["by_octave"], "octave"), "",
             *_level_table(summary["by_octave"], "octave"),
             *_timbre_table(summary["by_octave"], "octave"),
             "## Definitions", "",
             "- wav MSE, spectral L1: the paper's Table 1 columns; spectral L1 is the mean of "
             "|log(1+|STFT x|²) − log(1+|STFT x̂|²)| (n_fft 1024, hop 256).",
             f"- MR-STFT: {MRSTFT_DESCRIPTION}",
             f"- pitch: {PITCH_DESCRIPTION} 'pitch acc. (real)' is the same tracker on the real notes: "
             "the ceiling the tracker allows on this data.",
             f"- FD logmel: Fréchet distance between Gaussians fitted to real and generated notes over "
             f"{EMBEDDING_DESCRIPTION} Biased upward for small groups; compare only at equal note counts.",
             f"- loudness: {LOUDNESS_DESCRIPTION}",
             f"- silence: {SILENCE_DESCRIPTION}",
             f"- timbre: {timbre.DESCRIPTION}",
             f"- nearest key: {NEAREST_KEY_DESCRIPTION}",
             f"- {TRAIN_NOTES_DESCRIPTION}"]
    missing = [*(report.get("nearest_key") or {}).get("missing", []),
               *((report.get("train_notes") or {}).get("nearest_key") or {}).get("missing", [])]
    if missing:
        parts += ["", "Notes without a nearest key: " + ", ".join(f"`{m}`" for m in missing)
                  + (" (and more; see the notes CSV)" if len(missing) < _num_missing(report) else "") + "."]
    if report.get("figures"):
        parts += ["", "## Figures", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in report["figures"]]
    return "\n".join(parts) + "\n"


def _num_missing(report: Mapping[str, Any]) -> int:
    return int((report.get("nearest_key") or {}).get("num_missing", 0)) + int(
        ((report.get("train_notes") or {}).get("nearest_key") or {}).get("num_missing", 0))


def _fit_section(report: Mapping[str, Any]) -> list[str]:
    """The held-out beside training notes section, or nothing without training notes."""
    train = report.get("train_notes")
    if not train:
        return []
    return ["## Held-out and training notes (fitting beside generalising)", "",
            f"{train['num_notes']} training notes (a stable sample of the {NEAREST_KEY_SPLIT} split) scored "
            f"as the {report['num_notes']} held-out ones:", "", fit_table(report), "",
            listener_table(train["summary"]["overall"], label="training notes"), "",
            "Per family:", "", fit_table(report, by_family=True), ""]


def _timbre_table(rows: Mapping[str, Mapping[str, Any]], first: str) -> list[str]:
    """:data:`TIMBRE_COLUMNS` as Markdown lines (with a blank line after), or none without timbre columns."""
    if not any("median_lts_db" in r for r in rows.values()):
        return []
    return [markdown_table(rows, first, TIMBRE_COLUMNS), ""]


def _level_table(rows: Mapping[str, Mapping[str, Any]], first: str) -> list[str]:
    """:data:`LEVEL_COLUMNS` as Markdown lines (with a blank line after), or none without level columns."""
    if not any("median_rms_db" in r or "spectral_l1_silence" in r for r in rows.values()):
        return []
    return [markdown_table(rows, first, LEVEL_COLUMNS), ""]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_report(report: Mapping[str, Any], out: str | Path, notes: Mapping[str, np.ndarray] | None = None,
                 stem: str = "evaluation", train_notes: Mapping[str, np.ndarray] | None = None) -> dict[str, Path]:
    """Write ``<stem>.md``, ``<stem>.json`` and, given per-note columns, ``<stem>_notes.csv``
    (and ``<stem>_train_notes.csv`` for the training notes' columns).

    Returns:
        ``{"markdown": path, "json": path[, "notes": path][, "train_notes": path]}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / f"{stem}.md", "json": out / f"{stem}.json"}
    paths["markdown"].write_text(format_markdown(report))
    paths["json"].write_text(json.dumps(_jsonable(report), indent=2) + "\n")
    for name, columns in (("notes", notes), ("train_notes", train_notes)):
        if columns is not None:
            paths[name] = _write_csv(columns, out / f"{stem}_{name}.csv")
    return paths


def _write_csv(notes: Mapping[str, np.ndarray], path: Path) -> Path:
    """One row per note, the 1-D columns (embeddings left out)."""
    import csv

    keys = [k for k, v in notes.items() if np.ndim(v) == 1]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(keys)
        for i in range(len(notes[keys[0]])):
            writer.writerow([_jsonable(np.asarray(notes[k])[i]) for k in keys])
    return path
