"""The nearest-key sampler baseline: what a user holding the training notes gets without any model.

For each scored note, the training split's note of the same instrument and velocity at the
nearest other pitch (:func:`sing_ray.timbre.nearest_key_plan`), resampled to the note's pitch
(:func:`sing_ray.timbre.shift_pitch`), scored with the model's metrics behind ``nk_``. Ray-free:
the sources' audio comes in a :class:`NearestKeys` (read by
:func:`sing_ray.evaluate.notes.load_nearest_keys`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .. import timbre
from ..nsynth import SAMPLE_RATE
from .metrics import EMBEDDING_DIM, TIMBRE_METRICS, note_metrics

# The nearest-key sampler's per-note columns are the model's names behind this prefix.
NEAREST_KEY_PREFIX = "nk_"
# Which of :func:`note_metrics`' columns the nearest key gets (the real notes' own columns,
# such as rms_db_real or spectral_l1_silence, are the model's already).
NEAREST_KEY_METRICS = ("wav_mse", "spectral_l1", "mrstft", "mrstft_sc", "mrstft_logmag", "rms_db", "rms_db_diff",
                       *TIMBRE_METRICS)
# Where the nearest key comes from: the notes a user of the model would hold.
NEAREST_KEY_SPLIT = "train"


@dataclass
class NearestKeys:
    """The training notes a sampler would stretch to play each target note.

    Attributes:
        plan: ``{target note_str: source note_str}`` for the targets that have a source.
        audio: ``{source note_str: (T,) float32}``, the sources' real audio.
        pitch: ``{source note_str: MIDI pitch}``.
    """

    plan: dict[str, str]
    audio: dict[str, np.ndarray]
    pitch: dict[str, int]


def plan_nearest_keys(targets: Mapping[str, np.ndarray], train: Mapping[str, np.ndarray]) -> list[str | None]:
    """For each target note, the ``note_str`` of the training note a sampler would stretch.

    Args:
        targets, train: metadata columns ``note_str``, ``instrument_str``, ``pitch``, ``velocity``.
    Returns:
        per target, the training note of the same instrument and velocity at the nearest pitch
        other than the target's own (:func:`timbre.nearest_key_plan`), or None when there is none.
    """
    keys = list(zip(np.asarray(train["instrument_str"]).astype(str), np.asarray(train["pitch"]).astype(int),
                    np.asarray(train["velocity"]).astype(int)))
    by_key = dict(zip(keys, np.asarray(train["note_str"]).astype(str)))
    wanted = zip(np.asarray(targets["instrument_str"]).astype(str), np.asarray(targets["pitch"]).astype(int),
                 np.asarray(targets["velocity"]).astype(int))
    return [None if key is None else by_key[key] for key in timbre.nearest_key_plan(list(wanted), keys)]


def nearest_key_shifts(keys: NearestKeys, note_strs: Sequence[str],
                       pitches: Sequence[int]) -> tuple[list[str | None], np.ndarray]:
    """Each note's nearest key (None where none) and the shift to its pitch in semitones (NaN where none)."""
    sources = [keys.plan.get(str(s)) for s in note_strs]
    semitones = np.array([np.nan if s is None else int(p) - keys.pitch[s] for s, p in zip(sources, pitches)],
                         dtype=np.float64)
    return sources, semitones


def shift_nearest_keys(keys: NearestKeys, note_strs: Sequence[str], pitches: Sequence[int], length: int,
                       sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """What the nearest-key sampler plays for each note: its source resampled to the note's pitch.

    Args:
        keys: the plan and the sources' audio (:func:`load_nearest_keys`).
        note_strs, pitches: (B,) the notes' names and MIDI pitches.
        length: samples per note (the shifted sources are cut or zero-padded to it).
    Returns:
        ``(audio, semitones)``: (B, length) float32, all zeros where a note has no nearest key,
        and (B,) the shift from the source's pitch, NaN where there is none.
    """
    sources, semitones = nearest_key_shifts(keys, note_strs, pitches)
    audio = np.zeros((len(sources), int(length)), dtype=np.float32)
    for i, source in enumerate(sources):
        if source is not None:
            audio[i] = timbre.shift_pitch(keys.audio[source], semitones[i], length, sample_rate)
    return audio, semitones


def nearest_key_metrics(real: np.ndarray, note_strs: Sequence[str], pitches: Sequence[int], keys: NearestKeys, *,
                        lts_db: np.ndarray | None = None, with_pitch: bool = True,
                        with_embedding: bool = True, sample_rate: int = SAMPLE_RATE,
                        shifted: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Score the nearest-key sampler on some notes: each note's source shifted to its pitch.

    Args:
        real: (B, T) the real notes.
        note_strs, pitches: (B,) their names and MIDI pitches.
        keys: the plan and the sources' audio (:func:`load_nearest_keys`).
        lts_db: (B,) the model's ``lts_db`` on these notes, for ``closer_than_nearest_key``.
        with_pitch, with_embedding: as :func:`note_metrics`.
        shifted: (B, T) the shifted sources when already at hand (:func:`shift_nearest_keys`).
    Returns:
        ``nk_<metric>`` (B,) for :data:`NEAREST_KEY_METRICS` (and ``nk_f0``, ``nk_cents`` with
        pitch; ``nk_emb_generated`` (B, 64) with embeddings), NaN where a note has no nearest
        key; ``nk_note_str`` (the source, "" where none) and ``nk_semitones`` (the shift); with
        ``lts_db``, ``closer_than_nearest_key``: 1.0 where the model's long-term spectrum is
        nearer the real one than the nearest key's, 0.0 where not, NaN without a nearest key.
    """
    p = NEAREST_KEY_PREFIX
    real = np.asarray(real, dtype=np.float32)
    n = len(real)
    sources, semitones = nearest_key_shifts(keys, note_strs, pitches)
    metrics = list(NEAREST_KEY_METRICS) + (["f0", "cents"] if with_pitch else [])
    out: dict[str, np.ndarray] = {f"{p}{k}": np.full(n, np.nan) for k in metrics}
    if with_embedding:
        out[f"{p}emb_generated"] = np.full((n, EMBEDDING_DIM), np.nan)
    out[f"{p}note_str"] = np.array([s or "" for s in sources], dtype=object)
    out[f"{p}semitones"] = semitones
    if shifted is None:
        shifted, _ = shift_nearest_keys(keys, note_strs, pitches, real.shape[1], sample_rate)
    idx = [i for i, s in enumerate(sources) if s is not None]
    if idx:
        scored = note_metrics(np.asarray(shifted, dtype=np.float32)[idx], real[idx], [int(pitches[i]) for i in idx],
                              with_pitch=with_pitch, with_reference_pitch=False, with_embedding=with_embedding,
                              sample_rate=sample_rate)
        for k in metrics + (["emb_generated"] if with_embedding else []):
            out[f"{p}{k}"][idx] = scored[k]
    if lts_db is not None:
        nk = out[f"{p}lts_db"]
        with np.errstate(invalid="ignore"):
            lts = np.asarray(lts_db, dtype=np.float64)
            out["closer_than_nearest_key"] = np.where(np.isfinite(nk) & np.isfinite(lts), (lts < nk).astype(np.float64),
                                                      np.nan)
    return out


def nearest_key_report(notes: Mapping[str, np.ndarray], max_listed: int = 20) -> dict[str, Any]:
    """Which scored notes have no nearest key: ``num_missing`` and up to ``max_listed`` of their names."""
    missing = [str(s) for s, src in zip(notes["note_str"], notes[f"{NEAREST_KEY_PREFIX}note_str"]) if not src]
    return {"source_split": NEAREST_KEY_SPLIT, "num_notes": int(len(notes["note_str"])),
            "num_missing": len(missing), "missing": missing[:max_listed]}
