"""The evaluation's figures: instrument embeddings (SING), the spectrogram sheet, training curves.

The drawing itself is :mod:`sing_ray.figures`'; this module picks the notes and fetches their audio.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import UserError
from .nearest_key import NEAREST_KEY_PREFIX, shift_nearest_keys
from .note_model import build_note_model
from .notes import fetch_notes, load_nearest_keys

log = logging.getLogger(__name__)


def draw_figures(checkpoint: bytes, info: Mapping, notes: Mapping[str, np.ndarray], dataset: str, split: str,
                 out: Path, tracking_uri: str | None, training_run: str | None,
                 max_families: int = 4, max_pitches: int = 4) -> dict[str, Path]:
    """The evaluation's figures: instrument embeddings (SING), spectrogram grid, training curves.

    Returns:
        ``{figure name: PNG path}`` for the figures that could be drawn.
    """
    from .. import figures as fig
    from ..checkpoint import load_model

    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if info["model_class"] == "SING":
        model, _ = load_model(checkpoint)
        paths["instrument_embeddings"] = fig.plot_instrument_embeddings(
            model, info["instruments"], out / "instrument_embeddings.png")
    sheet = draw_spectrogram_sheet(checkpoint, notes, dataset, split, out / "spectrograms.png",
                                   max_families, max_pitches)
    if sheet is not None:
        paths["spectrograms"] = sheet
    if training_run:
        try:
            paths["training_curves"] = fig.plot_training_curves(training_run, out / "training_curves.png",
                                                                tracking_uri)
        except UserError as err:
            log.warning("no training curves: %s", err)
    return paths


def draw_spectrogram_sheet(checkpoint: bytes, notes: Mapping[str, np.ndarray], dataset: str, split: str,
                           path: str | Path, max_families: int = 4, max_pitches: int = 4,
                           audio: Mapping[str, np.ndarray] | None = None) -> Path | None:
    """Real | generated | nearest-key spectrograms of a few scored notes (:func:`figures.plot_spectrogram_grid`).

    The notes are chosen among ``notes`` by :func:`figures.choose_grid_notes` (families with most
    notes as rows, pitches low to high as columns); without ``audio`` their real audio is fetched
    from the split and the model's output generated here, on the driver. When the notes were
    scored beside the nearest key (``notes`` has ``nk_note_str``), each gets a third panel: the
    training note a sampler would stretch, resampled to its pitch (from ``audio["nearest"]``,
    else read from the training split).

    Args:
        checkpoint: the model's checkpoint bytes.
        notes: per-note columns of the scored notes (``note_str``, ``instrument_family_str``,
            ``pitch``, ``velocity``; ``nk_note_str`` and ``nk_semitones`` for the nearest key).
        dataset, split: where the real notes are.
        path: the PNG to write.
        audio: ``{"real": (N, T), "generated": (N, T)}`` in the order of ``notes``' rows, and
            ``"nearest"`` (N, T), when already at hand (:func:`score_split_here`).
    Returns:
        the path, or None when there are no notes to draw.
    """
    from .. import figures as fig
    from ..data.dataset import WAV_COLUMN

    chosen = fig.choose_grid_notes(notes, max_families, max_pitches)
    if not chosen:
        return None
    row = {str(name): i for i, name in enumerate(np.asarray(notes["note_str"]))}
    idx = [row[name] for name in chosen]
    if audio is not None:
        real = {k: np.asarray(notes[k])[idx] for k in ("instrument_family_str", "pitch")}
        real[WAV_COLUMN] = np.asarray(audio["real"])[idx]
        generated = np.asarray(audio["generated"])[idx]
    else:
        real = fetch_notes(dataset, split, chosen)
        fn, _ = build_note_model(checkpoint)
        generated = fn(real["instrument_str"], real["pitch"], real["velocity"], real[WAV_COLUMN])
    nearest = nearest_pitches = None
    if f"{NEAREST_KEY_PREFIX}note_str" in notes:
        pitches = np.asarray(notes["pitch"])[idx].astype(int)
        semitones = np.asarray(notes[f"{NEAREST_KEY_PREFIX}semitones"], dtype=np.float64)[idx]
        nearest_pitches = [None if not np.isfinite(s) else int(p - s) for p, s in zip(pitches, semitones)]
        if audio is not None and "nearest" in audio:
            nearest = np.asarray(audio["nearest"])[idx]
        else:
            targets = {k: np.asarray(notes[k])[idx] for k in ("note_str", "instrument_str", "pitch", "velocity")}
            nearest, _ = shift_nearest_keys(load_nearest_keys(dataset, targets), chosen, pitches,
                                            real[WAV_COLUMN].shape[1])
    # The family is the row's label: the note's name alone fits its panel.
    return fig.plot_spectrogram_grid(
        real[WAV_COLUMN], generated, chosen, path,
        families=[str(f) for f in real["instrument_family_str"]], pitches=[int(p) for p in real["pitch"]],
        nearest=nearest, nearest_pitches=nearest_pitches)
