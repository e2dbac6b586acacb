"""The audio column's encodings side by side: bytes per note, write cost and read cost.

For each ``--audio`` choice (``pcm``, ``zstd``, ``flac``; see
:mod:`sing_ray.data.codec`) the same notes of an ingested dataset are written
as shards in memory, with the writers' own functions
(:func:`sing_ray.data.notes.build_note_table`, :func:`~sing_ray.data.notes.parquet_options`),
and read back as the readers do (``pyarrow.parquet.read_table``, then
:func:`sing_ray.data.dataset.decode_audio` to float32 waveforms). Every
encoding must give back exactly the source's samples; the bench checks it.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .codec import AUDIO_CHOICES, audio_column, audio_choice, decode_int16
from .dataset import _load_manifest, audio_encoding, decode_audio
from .notes import parquet_options
from .schema import NOTE_SCHEMA
from .storage import resolve

DEFAULT_CODEC_NOTES = 1024
ROWS_PER_SHARD = 512


@dataclass
class CodecFigures:
    """One encoding's figures over the sampled notes (times: median of the repeats).

    Attributes:
        audio: the ``--audio`` choice.
        bytes_per_note: the shards' file bytes / notes (metadata columns included).
        audio_bytes_per_note: the ``audio`` column chunks' stored bytes / notes.
        write_ms: encoding and writing a shard, per note.
        read_ms: reading a shard and decoding its audio to float32, per note.
        identical: the decoded samples equal the source's, bit for bit.
        num_notes: how many notes.
    """

    audio: str
    bytes_per_note: float
    audio_bytes_per_note: float
    write_ms: float
    read_ms: float
    identical: bool
    num_notes: int


def _sample_tables(dataset: str, max_notes: int) -> tuple[list[pa.Table], np.ndarray]:
    """Up to ``max_notes`` notes of a dataset, in shard-sized tables, and their int16 samples."""
    where = resolve(dataset)
    manifest = _load_manifest(where)
    encoding = audio_encoding(manifest)
    tables, taken = [], 0
    for shard in manifest["shards"]:
        if taken >= max_notes:
            break
        with where.fs.open_input_file(where.join(shard["path"])) as handle:
            table = pq.read_table(handle, schema=NOTE_SCHEMA)
        table = table.slice(0, max_notes - taken)
        taken += table.num_rows
        tables.append(table)
    table = pa.concat_tables(tables)
    samples = np.array(decode_int16(table.column("audio"), encoding))
    pieces = [table.slice(i, ROWS_PER_SHARD) for i in range(0, table.num_rows, ROWS_PER_SHARD)]
    return pieces, samples


def bench_codecs(dataset: str, max_notes: int = DEFAULT_CODEC_NOTES, repeats: int = 3) -> list[CodecFigures]:
    """Write and read the same notes with each encoding; figures per encoding, ``pcm`` first.

    Args:
        dataset: an ingested dataset (any encoding) whose notes are used.
        max_notes: how many of its notes (the first shards').
        repeats: timed rounds; times are medians.
    """
    pieces, samples = _sample_tables(dataset, max_notes)
    n = len(samples)
    rows = np.cumsum([0] + [p.num_rows for p in pieces])
    figures = []
    for choice in AUDIO_CHOICES:
        encoding, compression = audio_choice(choice)
        options = parquet_options(compression)
        writes, reads, identical = [], [], True
        for _ in range(repeats):
            files, start = [], time.perf_counter()
            for k, piece in enumerate(pieces):
                column = audio_column(samples[rows[k]:rows[k + 1]], encoding)
                table = piece.set_column(piece.schema.get_field_index("audio"), "audio", column)
                sink = pa.BufferOutputStream()
                pq.write_table(table, sink, **options)
                files.append(sink.getvalue())
            writes.append(time.perf_counter() - start)
            start, decoded = time.perf_counter(), []
            for data in files:
                table = pq.read_table(pa.BufferReader(data))
                decoded.append(decode_audio(table.column("audio"), encoding))
            reads.append(time.perf_counter() - start)
            wav = np.concatenate(decoded)
            identical &= bool(np.array_equal(wav * np.float32(32768), samples.astype(np.float32)))
        size = sum(f.size for f in files)
        audio_size = 0
        for data in files:
            meta = pq.ParquetFile(pa.BufferReader(data)).metadata
            index = meta.schema.names.index("audio")
            audio_size += sum(meta.row_group(g).column(index).total_compressed_size
                              for g in range(meta.num_row_groups))
        figures.append(CodecFigures(choice, size / n, audio_size / n, statistics.median(writes) / n * 1e3,
                                    statistics.median(reads) / n * 1e3, identical, n))
    return figures


def format_codecs(dataset: str, figures: list[CodecFigures]) -> str:
    """The table a person reads: each encoding beside ``pcm``."""
    base = figures[0]
    lines = [f"audio encodings on {dataset} ({base.num_notes} notes; {ROWS_PER_SHARD} rows per shard; "
             "read = Parquet read + decode to float32)",
             f"  {'audio':<6} {'kB/note':>8} {'audio kB':>9} {'vs pcm':>7} {'GB/100k':>8} "
             f"{'write ms':>9} {'read ms':>8} {'read vs pcm':>11}  bit-identical"]
    for f in figures:
        lines.append(f"  {f.audio:<6} {f.bytes_per_note / 1e3:8.1f} {f.audio_bytes_per_note / 1e3:9.1f} "
                     f"{f.bytes_per_note / base.bytes_per_note:7.2f} {f.bytes_per_note * 1e5 / 1e9:8.2f} "
                     f"{f.write_ms:9.3f} {f.read_ms:8.3f} {f.read_ms / base.read_ms:10.2f}x  "
                     f"{'yes' if f.identical else 'NO'}")
    return "\n".join(lines)
