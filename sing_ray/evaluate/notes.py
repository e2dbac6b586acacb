"""Which notes are scored and their audio: the stable sample of a split, named notes, nearest keys' sources.

:func:`keep_note` and :func:`sample_candidates` read no audio and need no Ray (the split's metadata
columns alone, :func:`sing_ray.data.dataset.read_split_metadata`); :func:`sample_split`,
:func:`fetch_notes`, :func:`fetch_held_notes` and :func:`load_nearest_keys` read audio through
Ray Data (:func:`sing_ray.data.dataset.make_note_dataset`).
"""
from __future__ import annotations

import hashlib
from typing import Iterable, Mapping

import numpy as np

from ..errors import UserError
from .nearest_key import NEAREST_KEY_SPLIT, NearestKeys, plan_nearest_keys


def keep_note(note_str: str, fraction: float, seed: int = 0) -> bool:
    """A stable pseudo-random choice of ``fraction`` of the notes, by a hash of their name.

    The same notes are kept whatever the shards, block sizes or worker count, and they
    spread over all instruments and pitches (taking the first N rows would not: rows are
    sorted by name, so by instrument).
    """
    if fraction >= 1.0:
        return True
    digest = hashlib.blake2b(f"{seed}:{note_str}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


def _subsample(batch: dict[str, np.ndarray], fraction: float, seed: int) -> dict[str, np.ndarray]:
    keep = np.array([keep_note(str(s), fraction, seed) for s in batch["note_str"]], dtype=bool)
    return {k: v[keep] for k, v in batch.items()}


def sample_split(dataset: str, split: str, max_notes: int | None = None, seed: int = 0):
    """One split as a Ray Dataset: every note, or a stable sample of at most ``max_notes``.

    The sample is chosen by :func:`keep_note`, so every caller scoring the same split
    with the same ``max_notes`` and ``seed`` gets the same notes.

    Returns:
        ``(dataset, split_size)``: the split's size from the manifest (None if it does not say).
    """
    from ..data.dataset import make_note_dataset

    split_size = _split_size(dataset, split)
    ds = make_note_dataset(dataset, split)
    fraction = _sample_fraction(max_notes, split_size)
    if fraction is not None:
        ds = ds.map_batches(_subsample, batch_format="numpy", fn_kwargs={"fraction": fraction, "seed": seed})
    if max_notes is not None:
        ds = ds.limit(max_notes)
    return ds, split_size


def _split_size(dataset: str, split: str) -> int | None:
    from ..data.dataset import load_manifest

    return load_manifest(dataset).get("splits", {}).get(split, {}).get("accepted")


def _sample_fraction(max_notes: int | None, split_size: int | None) -> float | None:
    """The :func:`keep_note` fraction of :func:`sample_split`, None when it keeps every note."""
    if max_notes is not None and split_size and max_notes < split_size:
        # Over-sample by a margin so the hash-chosen sample rarely falls short of max_notes.
        return min(1.0, 1.2 * max_notes / split_size + 8 / split_size)
    return None


def sample_candidates(dataset: str, split: str, max_notes: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """The metadata of every note :func:`sample_split` may return, read without audio.

    A superset of its sample (the hash keeps a margin over ``max_notes``, then the first
    ``max_notes`` rows stream through), known before any audio is read.

    Returns:
        ``{note_str, instrument_str, pitch, velocity: (K,) arrays}``.
    """
    from ..data.dataset import read_split_metadata

    meta = read_split_metadata(dataset, split)
    fraction = _sample_fraction(max_notes, _split_size(dataset, split))
    if fraction is None:
        return meta
    keep = np.array([keep_note(str(s), fraction, seed) for s in meta["note_str"]], dtype=bool)
    return {k: v[keep] for k, v in meta.items()}


def fetch_notes(dataset: str, split: str, note_strs: Iterable[str]) -> dict[str, np.ndarray]:
    """The real audio and metadata of a few named notes of a split (for figures, nearest keys).

    Only those notes' audio is decoded and comes here: the name filter goes to the Parquet
    reader (:func:`make_note_dataset`'s ``note_strs``).

    Returns:
        columns of the dataset for those notes, ``wav`` (K, T), in the order of ``note_strs``.
    """
    from ..data.dataset import WAV_COLUMN, make_note_dataset

    wanted = [str(s) for s in note_strs]
    rows = {str(r["note_str"]): r for r in make_note_dataset(dataset, split, note_strs=wanted).take_all()}
    missing = [s for s in wanted if s not in rows]
    if missing:
        raise UserError(f"{dataset}: notes {missing[:3]} not found in the {split} split")
    keys = list(rows[wanted[0]].keys())
    out = {k: np.stack([np.asarray(rows[s][k]) for s in wanted]) for k in keys if k != WAV_COLUMN}
    out[WAV_COLUMN] = np.stack([np.asarray(rows[s][WAV_COLUMN], dtype=np.float32) for s in wanted])
    return out


def fetch_held_notes(dataset: str, note_strs: Iterable[str]) -> dict[str, tuple[str, np.ndarray]]:
    """The dataset's own recordings of those of some notes it holds, from whichever split holds each.

    Each split's names are read without audio (:func:`read_split_metadata`); only the notes
    found are decoded (:func:`fetch_notes`).

    Args:
        dataset: an ingested dataset.
        note_strs: NSynth names (``<instrument>-<pitch:03d>-<velocity:03d>``).
    Returns:
        ``{note_str: (split, (T,) float32)}`` for the notes the dataset holds; the others are left out.
    """
    from ..data.dataset import WAV_COLUMN, read_split_metadata
    from ..nsynth import SPLITS

    wanted = {str(s) for s in note_strs}
    out: dict[str, tuple[str, np.ndarray]] = {}
    for split in SPLITS:
        names = np.asarray(read_split_metadata(dataset, split, ("note_str",))["note_str"]).astype(str)
        held = sorted(wanted.intersection(names) - set(out))
        if held:
            fetched = fetch_notes(dataset, split, held)
            out.update({s: (split, wav) for s, wav in zip(held, fetched[WAV_COLUMN])})
    return out


def load_nearest_keys(dataset: str, targets: Mapping[str, np.ndarray],
                      source_split: str = NEAREST_KEY_SPLIT) -> NearestKeys:
    """Plan the nearest keys of ``targets`` from the training split's metadata, then read those notes.

    Only the metadata columns of ``source_split`` are read whole; the audio read is that of the
    chosen sources alone (:func:`fetch_notes`), 256 kB per source note.

    Args:
        dataset: an ingested dataset.
        targets: the scored notes' metadata (``note_str``, ``instrument_str``, ``pitch``, ``velocity``).
    """
    from ..data.dataset import WAV_COLUMN, read_split_metadata

    sources = plan_nearest_keys(targets, read_split_metadata(dataset, source_split))
    plan = {str(t): s for t, s in zip(np.asarray(targets["note_str"]), sources) if s is not None}
    wanted = sorted(set(plan.values()))
    if not wanted:
        return NearestKeys(plan, {}, {})
    fetched = fetch_notes(dataset, source_split, wanted)
    return NearestKeys(plan, dict(zip(wanted, fetched[WAV_COLUMN])),
                       {s: int(p) for s, p in zip(wanted, fetched["pitch"])})
