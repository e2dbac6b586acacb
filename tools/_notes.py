"""The notes of an ingested dataset, read here without Ray: what every tool starts from.

``sing_ray.data.dataset.read_split_metadata`` reads a split's metadata without Ray, and
``sing_ray.evaluate.sample_candidates`` picks ``sing-ray evaluate``'s stable sample from it;
the audio the package reads through Ray Data (``make_note_dataset``, ``evaluate.fetch_notes``).
An inspector wants neither a Ray session nor a glob over Parquet files, so :func:`read_notes`
reads the shards the manifest lists for the split, asks the Parquet reader for the named notes
alone, and decodes their audio with the package's ``decode_audio``.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sing_ray.data.dataset import WAV_COLUMN, audio_encoding, decode_audio, load_manifest, read_split_metadata
from sing_ray.data.storage import resolve
from sing_ray.errors import UserError
from sing_ray.evaluate import sample_candidates

COLUMNS = ("note_str", "instrument_str", "instrument_family_str", "pitch", "velocity")


def read_notes(dataset: str, split: str, note_strs: Iterable[str] | None = None,
               columns: Sequence[str] = COLUMNS) -> dict[str, np.ndarray]:
    """Metadata and audio of a split's notes, all or the named ones.

    Args:
        dataset: an ingested dataset folder or URI.
        split: ``train``, ``valid`` or ``test``.
        note_strs: only these notes, in this order (None: every note, in the shards' order).
        columns: metadata columns to keep beside the audio.
    Returns:
        ``{column: (N,) array}`` and ``wav``: (N, 64000) float32 in [-1, 1).
    """
    manifest = load_manifest(dataset)
    where = resolve(dataset)
    wanted = None if note_strs is None else [str(s) for s in note_strs]
    filters = None if wanted is None else [("note_str", "in", sorted(set(wanted)))]
    tables = []
    for shard in manifest["shards"]:
        if shard["split"] == split:
            with where.fs.open_input_file(where.join(shard["path"])) as handle:
                tables.append(pq.read_table(handle, columns=[*columns, "audio"], filters=filters))
    if not tables:
        raise UserError(f"{dataset}: the {split} split holds no notes")
    table = pa.concat_tables(tables)
    if wanted is not None:
        found = {s: i for i, s in enumerate(table.column("note_str").to_pylist())}
        missing = [s for s in wanted if s not in found]
        if missing:
            raise UserError(f"{dataset}: notes {missing[:3]} not found in the {split} split")
        table = table.take([found[s] for s in wanted])
    out = {c: table.column(c).to_numpy(zero_copy_only=False) for c in columns}
    out[WAV_COLUMN] = decode_audio(table.column("audio"), audio_encoding(manifest))
    return out


def sample_notes(dataset: str, split: str, max_notes: int | None = None) -> dict[str, np.ndarray]:
    """A split's notes, or at most ``max_notes`` of them chosen as ``sing-ray evaluate`` chooses.

    The sample is ``evaluate.keep_note``'s stable hash (``sample_candidates``), its first
    ``max_notes`` in the shards' order: the notes ``sing-ray evaluate --max-notes`` and its
    training-note sample score, unless its Ray read returned them in another order.
    """
    meta = sample_candidates(dataset, split, max_notes) if max_notes else read_split_metadata(dataset, split)
    names = list(np.asarray(meta["note_str"]).astype(str))
    if max_notes:
        names = names[:max_notes]
    return read_notes(dataset, split, names)


def batched(fn, notes: dict[str, np.ndarray], batch_size: int = 16) -> np.ndarray:
    """``fn(instrument_str, pitch, velocity, wav)`` (``evaluate.build_note_model``'s) over every note, in batches."""
    n = len(notes["note_str"])
    if n == 0:
        return np.zeros((0, notes[WAV_COLUMN].shape[-1]), dtype=np.float32)
    return np.concatenate([fn(notes["instrument_str"][i:i + batch_size], notes["pitch"][i:i + batch_size],
                              notes["velocity"][i:i + batch_size], notes[WAV_COLUMN][i:i + batch_size])
                           for i in range(0, n, batch_size)])
