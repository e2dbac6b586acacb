"""Opening an ingested dataset: its manifest, vocabulary, and one split as a Ray Dataset."""
from __future__ import annotations

import json
import logging
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa

from .. import nsynth
from ..errors import UserError
from .codec import ENCODINGS, PCM, decode_int16
from .schema import METADATA_COLUMNS, NOTE_SCHEMA, SCHEMA_VERSION
from .storage import Location, resolve

log = logging.getLogger(__name__)

WAV_COLUMN = "wav"   # float32 waveform in [-1, 1), (NUM_FRAMES,) per row


def load_manifest(path: str) -> dict:
    """Read a dataset's ``manifest.json`` after checking that the dataset is complete.

    Args:
        path: the dataset folder (local path or URI).

    Returns:
        the manifest (see docs/ingest.md). Raises UserError for a folder that is
        not a finished sing-ray dataset or has another schema version.
    """
    where = resolve(path)
    return _load_manifest(where)


def _load_manifest(where: Location) -> dict:
    if not where.is_dir():
        raise UserError(f"{where.uri}: no such dataset folder")
    if not where.exists("_SUCCESS"):
        raise UserError(f"{where.uri}: not a finished sing-ray dataset (no _SUCCESS); "
                        "run `sing-ray data ingest` into it again")
    try:
        manifest = json.loads(where.read_bytes("manifest.json"))
    except (OSError, FileNotFoundError, json.JSONDecodeError) as err:
        raise UserError(f"{where.display('manifest.json')}: unreadable ({err})") from None
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if version != SCHEMA_VERSION:
        raise UserError(f"{where.uri}: schema version {version!r}, this sing-ray reads {SCHEMA_VERSION}; "
                        "ingest the source again")
    encoding = audio_encoding(manifest)
    if encoding not in ENCODINGS:
        raise UserError(f"{where.display('manifest.json')}: audio encoding {encoding!r}, this sing-ray "
                        f"reads {', '.join(ENCODINGS)}")
    return manifest


def load_vocabulary(path: str) -> list[str]:
    """The instrument vocabulary: ``instrument`` id ``i`` is ``vocabulary[i]``."""
    return list(load_manifest(path)["instruments"])


def load_cardinalities(path: str) -> dict[str, int]:
    """Sizes of the lookup tables a model needs (instrument, pitch, velocity, ...)."""
    return dict(load_manifest(path)["cardinalities"])


def decode_audio(audio: pa.Array | pa.ChunkedArray, encoding: str | None = None) -> np.ndarray:
    """The ``audio`` column (raw int16 PCM or FLAC, see :mod:`sing_ray.data.codec`) as float32 waveforms.

    Args:
        audio: n binary values, each one note.
        encoding: the manifest's ``audio.encoding`` (``pcm_s16le`` or ``flac``; see
            :func:`audio_encoding`); None tells it from the values.

    Returns:
        (n, NUM_FRAMES) float32 in [-1, 1): samples / 32768, the same for either encoding.
    """
    return decode_int16(audio, encoding).astype(np.float32) * np.float32(1 / 32768)


def audio_encoding(manifest: dict) -> str:
    """The encoding of a dataset's ``audio`` column, from its manifest (``pcm_s16le`` before FLAC existed)."""
    return str(manifest.get("audio", {}).get("encoding", PCM))


def _to_waveforms(batch: pa.Table, encoding: str | None = None) -> dict[str, np.ndarray]:
    """Ray Data UDF: replace ``audio`` by ``wav`` (float32) and keep the metadata columns."""
    out = {}
    for name in METADATA_COLUMNS:
        column = batch.column(name)
        if name == "qualities":
            flat = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
            out[name] = flat.reshape(batch.num_rows, len(nsynth.QUALITIES)).astype(np.int8)
        else:
            out[name] = column.to_numpy()
    out[WAV_COLUMN] = decode_audio(batch.column("audio"), encoding)
    return out


def make_note_dataset(path: str, split: str, *, override_num_blocks: int | None = None,
                      note_strs: Iterable[str] | None = None):
    """One split of an ingested dataset as a Ray Dataset of float32 waveforms.

    Args:
        path: the dataset folder (local path or URI), as written by ``sing-ray data ingest``.
        split: ``train``, ``valid`` or ``test``.
        override_num_blocks: passed to ``ray.data.read_parquet`` (None: Ray decides).
        note_strs: only these notes (None: all). The filter goes to the Parquet reader, which
            skips the row groups whose ``note_str`` statistics rule them out (shards are sorted
            by name), and no other note's audio is decoded.

    Returns:
        a ``ray.data.Dataset`` with the note columns of docs/architecture.md#data-contracts
        (``note_str``, ``instrument`` (dense id), ``pitch``, ``velocity``, ..., ``split``)
        and ``wav``: (NUM_FRAMES,) float32 in [-1, 1) per row. The vocabulary and
        cardinalities are in :func:`load_manifest` (or :func:`load_vocabulary`,
        :func:`load_cardinalities`).
    """
    import ray.data

    if split not in nsynth.SPLITS:
        raise UserError(f"unknown split {split!r}; expected one of {', '.join(nsynth.SPLITS)}")
    where = resolve(path)
    manifest = _load_manifest(where)
    # Shards never mix splits (see ingest), so a split is read by its files alone.
    files = [where.join(s["path"]) for s in manifest["shards"] if s["split"] == split]
    if not files:
        log.warning("%s: the %s split holds no notes", where.uri, split)
        ds = ray.data.from_arrow(NOTE_SCHEMA.empty_table())
    else:
        ds = ray.data.read_parquet(files, filesystem=where.fs, override_num_blocks=override_num_blocks)
        if note_strs is not None:
            from ray.data.expressions import col

            # An expression, not a Python predicate: Ray pushes it into the Parquet read.
            ds = ds.filter(expr=col("note_str").is_in(sorted({str(s) for s in note_strs})))
    return ds.map_batches(_to_waveforms, batch_format="pyarrow", zero_copy_batch=True,
                          fn_kwargs={"encoding": audio_encoding(manifest)})


def read_split_metadata(path: str, split: str,
                        columns: Sequence[str] = ("note_str", "instrument_str", "pitch", "velocity")
                        ) -> dict[str, np.ndarray]:
    """Metadata columns of one split, read here without its audio.

    Parquet is columnar: only the named columns are read, so even a large split's keys
    (289k NSynth train notes: a few MB) come without its 128 kB-per-note audio.

    Args:
        path: the dataset folder (local path or URI).
        split: ``train``, ``valid`` or ``test``.
        columns: metadata columns (not ``audio``).
    Returns:
        ``{column: (N,) array}`` in the shards' order (sorted by note_str per shard).
    """
    import pyarrow.parquet as pq

    if split not in nsynth.SPLITS:
        raise UserError(f"unknown split {split!r}; expected one of {', '.join(nsynth.SPLITS)}")
    columns = list(columns)
    if "audio" in columns or WAV_COLUMN in columns:
        raise ValueError("read_split_metadata reads metadata columns only")
    where = resolve(path)
    manifest = _load_manifest(where)
    tables = []
    for shard in manifest["shards"]:
        if shard["split"] == split:
            with where.fs.open_input_file(where.join(shard["path"])) as handle:
                tables.append(pq.read_table(handle, columns=columns))
    table = pa.concat_tables(tables) if tables else NOTE_SCHEMA.empty_table().select(columns)
    return {c: table.column(c).to_numpy() for c in columns}


def read_note_split(path: str, split: str, columns: list[str] | None = None, rows_per_block: int = 64):
    """One small split read here, in this process, into Ray's object store as a Dataset.

    The same rows and columns as ``make_note_dataset(path, split).select_columns(columns)
    .materialize()``, without launching Ray Data read tasks: for a split that fits in memory
    the tasks' start-up costs seconds per split, the read itself a fraction of one.

    Args:
        path: the dataset folder (local path or URI).
        split: ``train``, ``valid`` or ``test``.
        columns: the columns to keep (default all; ``wav`` is the decoded audio).
        rows_per_block: rows per block of the result (blocks are what workers split).
    Returns:
        a materialized ``ray.data.Dataset``.
    """
    import pyarrow.parquet as pq
    import ray.data
    from ray.data.extensions import ArrowTensorArray

    if split not in nsynth.SPLITS:
        raise UserError(f"unknown split {split!r}; expected one of {', '.join(nsynth.SPLITS)}")
    where = resolve(path)
    manifest = _load_manifest(where)
    files = [where.join(s["path"]) for s in manifest["shards"] if s["split"] == split]
    blocks = []
    for name in files:
        with where.fs.open_input_file(name) as handle:
            table = pq.read_table(handle)
        for start in range(0, table.num_rows, rows_per_block):
            decoded = _to_waveforms(table.slice(start, rows_per_block), audio_encoding(manifest))
            keep = columns or list(decoded)
            blocks.append(pa.table({c: ArrowTensorArray.from_numpy(decoded[c]) if decoded[c].ndim > 1
                                    else pa.array(decoded[c]) for c in keep}))
    if not blocks:
        return make_note_dataset(path, split).select_columns(columns) if columns else make_note_dataset(path, split)
    return ray.data.from_arrow(blocks)
