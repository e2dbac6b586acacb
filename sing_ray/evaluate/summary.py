"""Grouped summaries of per-note metrics: overall, per instrument family, per pitch octave. Ray-free."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .metrics import NEAR_SILENT_DB, TIMBRE_METRICS, frechet_distance, in_tune, octave_of
from .nearest_key import NEAREST_KEY_PREFIX


# The metrics a summary gives as their means over the group.
SUMMARY_METRICS = ("wav_mse", "spectral_l1", "mrstft")
# A spectral L1 within this share of silence's is no better than silence (as table1.SILENCE_RTOL).
SILENCE_RTOL = 1e-3


def summarize_group(notes: Mapping[str, np.ndarray], mask: np.ndarray | None = None,
                    min_fd_notes: int = 2) -> dict[str, Any]:
    """Aggregate per-note metrics over the notes selected by ``mask`` (all when None).

    Args:
        notes: columns from :func:`note_metrics` (and any metadata), each (N,) or (N, D).
        mask: (N,) bool.
        min_fd_notes: the Fréchet distance needs this many notes (it is biased upward with few).
    Returns:
        ``num_notes``; the mean of each of :data:`SUMMARY_METRICS`; with ``spectral_l1_silence``
        its mean and ``spectral_l1_vs_silence`` (mean spectral L1 / silence's: 1 or more is no
        better than an all-zero output); with levels ``median_rms_db``, ``median_rms_db_real``,
        ``median_rms_db_diff`` (generated − real), ``median_abs_rms_db_diff``,
        ``num_near_silent`` and ``near_silent_share`` (generated notes below
        :data:`NEAR_SILENT_DB`) and ``num_near_silent_real``; with pitch columns
        ``pitch_accuracy`` (share within 50 cents, untracked notes counting as misses),
        ``median_abs_cents`` (over tracked notes), ``untracked_share``, and for the real notes
        ``pitch_accuracy_real``; with embeddings ``fd_logmel`` (None below ``min_fd_notes``);
        with timbre columns ``median_lts_db``, ``median_lts_loud_db``, ``median_envelope_db`` and
        silence's (``median_lts_db_silence``, ...); with the nearest key's columns (``nk_*``),
        its figures under the same names behind ``nk_`` (:func:`summarize_nearest_key`).
    """
    n_all = len(next(iter(notes.values())))
    mask = np.ones(n_all, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    n = int(mask.sum())
    out: dict[str, Any] = {"num_notes": n}
    if n == 0:
        return out
    for key in SUMMARY_METRICS:
        if key in notes:
            out[key] = float(np.mean(np.asarray(notes[key])[mask]))
    if "spectral_l1_silence" in notes:
        silence = float(np.mean(np.asarray(notes["spectral_l1_silence"])[mask]))
        out["spectral_l1_silence"] = silence
        if "spectral_l1" in out:
            # A ratio of means, not a mean of ratios: quiet notes, whose silence L1 is
            # small, would otherwise dominate.
            out["spectral_l1_vs_silence"] = out["spectral_l1"] / silence if silence > 0 else None
    if "rms_db" in notes:
        level = np.asarray(notes["rms_db"], dtype=np.float64)[mask]
        out["median_rms_db"] = float(np.median(level))
        out["num_near_silent"] = int((level < NEAR_SILENT_DB).sum())
        out["near_silent_share"] = out["num_near_silent"] / n
    if "rms_db_real" in notes:
        level_real = np.asarray(notes["rms_db_real"], dtype=np.float64)[mask]
        out["median_rms_db_real"] = float(np.median(level_real))
        out["num_near_silent_real"] = int((level_real < NEAR_SILENT_DB).sum())
        if "rms_db" in notes:
            diff = level - level_real
            out["median_rms_db_diff"] = float(np.median(diff))
            out["median_abs_rms_db_diff"] = float(np.median(np.abs(diff)))
    if "cents" in notes:
        cents = np.asarray(notes["cents"], dtype=np.float64)[mask]
        tracked = np.isfinite(cents)
        out["pitch_accuracy"] = float(in_tune(cents).mean())
        out["median_abs_cents"] = float(np.median(np.abs(cents[tracked]))) if tracked.any() else None
        out["untracked_share"] = float(1.0 - tracked.mean())
    if "cents_real" in notes:
        out["pitch_accuracy_real"] = float(in_tune(np.asarray(notes["cents_real"])[mask]).mean())
    if "emb_real" in notes and "emb_generated" in notes:
        out["fd_logmel"] = (frechet_distance(np.asarray(notes["emb_real"])[mask],
                                             np.asarray(notes["emb_generated"])[mask])
                            if n >= min_fd_notes else None)
    for key in TIMBRE_METRICS:
        for name in (key, f"{key}_silence"):
            if name in notes:
                out[f"median_{name}"] = float(np.median(np.asarray(notes[name], dtype=np.float64)[mask]))
    if f"{NEAREST_KEY_PREFIX}lts_db" in notes:
        out.update(summarize_nearest_key(notes, mask, min_fd_notes))
    return out


# Figures of the real notes or of silence: the model's summary has them already.


# Figures of the real notes or of silence: the model's summary has them already.
_REAL_SUMMARY_KEYS = ("median_rms_db_real", "num_near_silent_real", "pitch_accuracy_real", "spectral_l1_silence",
                      *(f"median_{k}_silence" for k in TIMBRE_METRICS))


def summarize_nearest_key(notes: Mapping[str, np.ndarray], mask: np.ndarray,
                          min_fd_notes: int = 2) -> dict[str, Any]:
    """The nearest key's figures over the notes of ``mask`` that have one.

    Args:
        notes: per-note columns with the nearest key's (``nk_lts_db``, ...; NaN where the note's
            instrument has no other training pitch at its velocity).
        mask: (N,) bool, the group.
    Returns:
        :func:`summarize_group`'s figures of the nearest key behind ``nk_`` (``nk_num_notes``:
        the notes it has, ``nk_pitch_accuracy``, ``nk_median_lts_db``, ...; not the real notes'
        or silence's, which are the model's); ``num_nearest_key_missing``: the group's notes
        without one; ``num_closer_than_nearest_key`` and ``closer_than_nearest_key_share``: the
        notes whose generated long-term spectrum is nearer the real one than the nearest key's
        (``lts_db < nk_lts_db``), over the notes with a nearest key (None without any).
    """
    p = NEAREST_KEY_PREFIX
    has = mask & np.isfinite(np.asarray(notes[f"{p}lts_db"], dtype=np.float64))
    view = {k[len(p):]: v for k, v in notes.items() if k.startswith(p)}
    for key in ("rms_db_real", "spectral_l1_silence", "emb_real"):
        if key in notes:
            view[key] = notes[key]
    summary = summarize_group(view, has, min_fd_notes)
    out = {f"{p}{k}": v for k, v in summary.items() if k not in _REAL_SUMMARY_KEYS}
    k = int(has.sum())
    out["num_nearest_key_missing"] = int(mask.sum()) - k
    closer = int(np.nansum(np.asarray(notes["closer_than_nearest_key"], dtype=np.float64)[has])) \
        if "closer_than_nearest_key" in notes else 0
    out["num_closer_than_nearest_key"] = closer
    out["closer_than_nearest_key_share"] = closer / k if k and "closer_than_nearest_key" in notes else None
    return out


def summarize(notes: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Overall, per instrument family and per pitch octave summaries of per-note results.

    Args:
        notes: per-note columns: the metrics plus ``pitch`` and ``instrument_family_str``.
    Returns:
        ``{"overall": {...}, "by_family": {family: {...}}, "by_octave": {"4": {...}}}`` with
        the fields of :func:`summarize_group`.
    """
    out: dict[str, Any] = {"overall": summarize_group(notes)}
    families = np.asarray(notes["instrument_family_str"]).astype(str)
    out["by_family"] = {fam: summarize_group(notes, families == fam) for fam in sorted(set(families))}
    octaves = octave_of(np.asarray(notes["pitch"], dtype=np.int64))
    out["by_octave"] = {str(o): summarize_group(notes, octaves == o) for o in sorted(set(octaves.tolist()))}
    return out


def scores_like_silence(overall: Mapping[str, Any]) -> bool:
    """True when the mean spectral L1 is no better than an all-zero output's (within :data:`SILENCE_RTOL`)."""
    ratio = overall.get("spectral_l1_vs_silence")
    return ratio is not None and ratio >= 1.0 - SILENCE_RTOL
