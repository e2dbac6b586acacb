"""The Arrow schemas of an ingested dataset (see docs/architecture.md#data-contracts).

One row per accepted note. ``audio`` holds the note's 64,000 samples exactly as
the source WAV's int16 values, encoded as the manifest's ``audio.encoding`` says
(:mod:`.codec`): ``pcm_s16le``, raw little-endian bytes (128,000 a note; ``zstd``
datasets are these, the column compressed by Parquet), or ``flac``, one FLAC
stream a note. Readers (``dataset.decode_audio``) give the same samples from any
of them, as float32 in [-1, 1) (divided by 32768).
"""
from __future__ import annotations

import pyarrow as pa

# Bump when a column is added, removed or changes type; readers check it.
SCHEMA_VERSION = 1

NOTE_SCHEMA = pa.schema([
    pa.field("note_str", pa.string(), nullable=False),
    pa.field("instrument", pa.int32(), nullable=False),          # dense id: index in the vocabulary
    pa.field("instrument_str", pa.string(), nullable=False),
    pa.field("instrument_family", pa.int32(), nullable=False),
    pa.field("instrument_family_str", pa.string(), nullable=False),
    pa.field("instrument_source", pa.int32(), nullable=False),
    pa.field("instrument_source_str", pa.string(), nullable=False),
    pa.field("pitch", pa.int32(), nullable=False),
    pa.field("velocity", pa.int32(), nullable=False),
    pa.field("qualities", pa.list_(pa.int8()), nullable=False),  # NSynth's 10 quality flags
    pa.field("sample_rate", pa.int32(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
    pa.field("audio", pa.binary(), nullable=False),               # int16 PCM bytes or FLAC (manifest's audio)
], metadata={b"sing_ray.schema_version": str(SCHEMA_VERSION).encode()})

REJECT_SCHEMA = pa.schema([
    pa.field("note_str", pa.string(), nullable=False),
    pa.field("path", pa.string(), nullable=False),
    pa.field("reason", pa.string(), nullable=False),
])

# Columns without the audio: what the per-note metadata looks like in memory.
METADATA_COLUMNS = tuple(name for name in NOTE_SCHEMA.names if name != "audio")

# Parquet options shared by sing-ray's writer and the benchmark's plain loop.
# Statistics and dictionaries only pay off on the small columns; on 128 kB
# audio values they cost time and bytes for nothing. No timestamps are written,
# so the same rows give byte-identical files.
PARQUET_OPTIONS = dict(
    compression="snappy",
    use_dictionary=[n for n in METADATA_COLUMNS if NOTE_SCHEMA.field(n).type == pa.string()],
    write_statistics=list(METADATA_COLUMNS),
    row_group_size=128,
)
