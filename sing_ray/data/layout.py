"""The ingested layout's shared parts: the manifest, split counts and dense ids.

Both writers of the layout (docs/architecture.md#data-contracts) use them: the
ingest of an NSynth folder (:mod:`sing_ray.data.ingest`) and the direct writer
(:mod:`sing_ray.data.direct`), so the datasets they make read the same.
"""
from __future__ import annotations

import json
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import nsynth
from .codec import audio_choice
from .notes import write_table
from .schema import NOTE_SCHEMA, SCHEMA_VERSION
from .storage import Location

UNKNOWN_SPLIT = "unknown"     # rejected notes whose metadata is too broken to place
NUM_UNLISTED_IN_MANIFEST = 20


def split_counts(accepted: Iterable[tuple[str, int]], reject_splits: Iterable[str | None]) -> dict:
    """Per split ``{"listed", "accepted", "rejected"}``, with ``listed = accepted + rejected``.

    Args:
        accepted: (split, rows) of each written shard.
        reject_splits: the split of each rejected note, None where its metadata
            was too broken to trust (counted under ``unknown``, shown only when used).

    Returns:
        the ``splits`` block of the manifest.
    """
    splits = {s: {"listed": 0, "accepted": 0, "rejected": 0} for s in (*nsynth.SPLITS, UNKNOWN_SPLIT)}
    for split, rows in accepted:
        splits[split]["accepted"] += rows
    for split in reject_splits:
        splits[split or UNKNOWN_SPLIT]["rejected"] += 1
    for c in splits.values():
        c["listed"] = c["accepted"] + c["rejected"]
    if not splits[UNKNOWN_SPLIT]["listed"]:
        del splits[UNKNOWN_SPLIT]
    return splits


def audio_block(audio: str) -> dict:
    """The manifest's ``audio`` block for an ``--audio`` choice (see :mod:`sing_ray.data.codec`)."""
    encoding, compression = audio_choice(audio)
    return {"column": "audio", "encoding": encoding, "compression": compression,
            "sample_rate": nsynth.SAMPLE_RATE, "num_frames": nsynth.NUM_FRAMES}


def build_manifest(*, source: str, examples_sha256: str | None, listed: int, splits: dict,
                   instruments: Sequence[str], audio: str, rows_per_shard: int,
                   shards: Sequence[dict], split_seed: int, unlisted: Sequence[str] = (),
                   extra: dict | None = None) -> dict:
    """``manifest.json``'s content; RuntimeError if the counts do not reconcile.

    Args:
        source: where the notes came from (a URI, or what the direct writer was told).
        examples_sha256: checksum of the source's examples.json (None when there is none).
        listed: notes offered (in examples.json, or to the direct writer).
        splits: :func:`split_counts`.
        instruments: the vocabulary of the accepted notes, in id order.
        audio: the ``--audio`` choice.
        rows_per_shard: the most notes per shard.
        shards: ``{"path", "split", "num_rows"}`` of each shard file, sorted by path.
        split_seed: seed of the split hash.
        unlisted: WAVs in the source's audio/ that examples.json does not list.
        extra: more top-level keys (the direct writer's own settings).

    Returns:
        the manifest.
    """
    accepted = sum(c["accepted"] for c in splits.values())
    rejected = sum(c["rejected"] for c in splits.values())
    if accepted != sum(s["num_rows"] for s in shards) or accepted + rejected != listed:
        raise RuntimeError(f"notes lost: {listed} listed but {accepted} accepted + {rejected} rejected "
                           f"({sum(s['num_rows'] for s in shards)} rows in the shards)")
    return {
        "format": "sing-ray notes",
        "schema_version": SCHEMA_VERSION,
        "source": source,
        "examples_sha256": examples_sha256,
        "counts": {"listed": listed, "accepted": accepted, "rejected": rejected,
                   "unlisted_wavs": len(unlisted)},
        "rejects": rejected,
        "splits": splits,
        "split": {"seed": split_seed, "valid_fraction": nsynth.VALID_FRACTION,
                  "test_fraction": nsynth.TEST_FRACTION, "key": "instrument_str, pitch"},
        "instruments": list(instruments),
        "cardinalities": {
            "instrument": len(instruments),
            "pitch": nsynth.PITCH_RANGE[1] + 1,
            "velocity": len(nsynth.VELOCITIES),
            "instrument_family": len(nsynth.FAMILIES),
            "instrument_source": len(nsynth.SOURCES),
            "qualities": len(nsynth.QUALITIES),
        },
        "audio": audio_block(audio),
        "rows_per_shard": rows_per_shard,
        "shards": [{"path": s["path"], "split": s["split"], "num_rows": s["num_rows"]} for s in shards],
        "unlisted_wavs": list(unlisted[:NUM_UNLISTED_IN_MANIFEST]),
        **(extra or {}),
    }


def write_manifest(where: Location, manifest: dict) -> None:
    """Write ``manifest.json``, then ``_SUCCESS`` last: from then on the folder is a dataset."""
    where.write_atomic((json.dumps(manifest, indent=2) + "\n").encode(), "manifest.json")
    where.write_bytes(b"", "_SUCCESS")


def renumber_shards(batch: pa.Table, dest: Location, vocabulary: Sequence[str],
                    compression: str = "snappy") -> pa.Table:
    """Ray Data UDF (or plain call): rewrite shards so that ``instrument`` is the index in ``vocabulary``.

    Ids are recomputed from each row's ``instrument_str``, so a rewrite cut short
    and run again gives the same files; each file is replaced atomically.

    Args:
        batch: a ``path`` column of shard paths relative to ``dest``.
        dest: the dataset folder.
        vocabulary: the final instrument vocabulary (every row's instrument_str is in it).
        compression: the ``audio`` column's Parquet compression (see :mod:`sing_ray.data.codec`).

    Returns:
        the ``path`` column.
    """
    index = {name: i for i, name in enumerate(vocabulary)}
    for path in batch.column("path").to_pylist():
        table = pq.read_table(dest.join(path), filesystem=dest.fs, schema=NOTE_SCHEMA)
        ids = np.array([index[s] for s in table.column("instrument_str").to_pylist()], dtype=np.int32)
        if np.array_equal(ids, table.column("instrument").to_numpy()):
            continue
        columns = [pa.array(ids, type=pa.int32()) if name == "instrument" else table.column(name)
                   for name in NOTE_SCHEMA.names]
        write_table(pa.Table.from_arrays(columns, schema=NOTE_SCHEMA), dest, path, compression, atomic=True)
    return pa.table({"path": batch.column("path")})
