"""Checking, decoding and writing notes: the per-note work of an ingest, without Ray.

Ray tasks (``sing_ray.data.ingest``) and the benchmark's plain loop
(``sing_ray.data.bench``) both call these functions, so they do the same work
and differ only in how it is spread over processes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from .. import nsynth
from .codec import PCM, ZSTD_LEVEL, audio_column, parquet_compression
from .schema import METADATA_COLUMNS, NOTE_SCHEMA, PARQUET_OPTIONS, REJECT_SCHEMA
from .storage import Location

EXPECTED_FORMAT = "WAV"
EXPECTED_SUBTYPE = "PCM_16"


def audio_relpath(note_str: str) -> str:
    """Where NSynth keeps a note's audio, relative to the source folder."""
    return f"audio/{note_str}.wav"


@dataclass(frozen=True)
class Note:
    """One listed note, placed in a split but not checked yet.

    Attributes:
        note_str: NSynth's name, also the WAV's base name.
        meta: its examples.json entry (checked by :func:`read_and_check`).
        split: ``train``, ``valid`` or ``test``: the seeded hash of its
            (instrument_str, pitch), which :func:`place_note` could read.
    """

    note_str: str
    meta: Mapping
    split: str


def place_note(meta, split_seed: int = nsynth.DEFAULT_SPLIT_SEED) -> str | None:
    """The split of an entry if its (instrument_str, pitch) can be read, else None.

    Cheap on purpose: the driver places every listed note with it, and leaves
    the full check (:func:`check_metadata`) to the tasks that read the audio.
    An entry that cannot be placed cannot be valid either.
    """
    if not isinstance(meta, Mapping):
        return None
    instrument, pitch = meta.get("instrument_str"), meta.get("pitch")
    if not isinstance(instrument, str) or not isinstance(pitch, int) or isinstance(pitch, bool):
        return None
    return nsynth.split_of(instrument, pitch, split_seed)


def check_metadata(note_str: str, meta) -> str | None:
    """Reason an examples.json entry is unusable, or None. The reason names examples.json."""
    if not isinstance(note_str, str) or not note_str:
        return f"examples.json: key {note_str!r} is not a note name"
    reason = nsynth.validate_metadata(note_str, meta)
    return None if reason is None else f"examples.json: {reason}"


def check_audio_header(f: sf.SoundFile | sf._SoundFileInfo, relpath: str) -> str | None:
    """Reason an opened WAV does not hold one NSynth note, or None.

    Args:
        f: an open ``soundfile.SoundFile`` (or ``soundfile.info`` result).
        relpath: ``audio/<note_str>.wav``, to start the reason with.

    Returns:
        e.g. ``"audio/x.wav: 44100 Hz, expected 16000"``, or None when the header is right.
    """
    if f.format != EXPECTED_FORMAT:
        return f"{relpath}: {f.format} file, expected WAV"
    if f.channels != 1:
        return f"{relpath}: {f.channels} channels, expected mono"
    if f.samplerate != nsynth.SAMPLE_RATE:
        return f"{relpath}: {f.samplerate} Hz, expected {nsynth.SAMPLE_RATE}"
    if f.subtype != EXPECTED_SUBTYPE:
        return f"{relpath}: {f.subtype} samples, expected 16-bit PCM (PCM_16)"
    if f.frames != nsynth.NUM_FRAMES:
        return f"{relpath}: {f.frames} frames, expected {nsynth.NUM_FRAMES}"
    return None


def read_note_into(source: Location, note_str: str, out: np.ndarray) -> str | None:
    """Decode and check one note's WAV into ``out``.

    Args:
        source: the NSynth-layout folder.
        note_str: the note; its audio is ``audio/<note_str>.wav``.
        out: (NUM_FRAMES,) int16, C-contiguous; receives the samples. Reading in
            place lets a whole shard share one buffer that Arrow then wraps without a copy.

    Returns:
        None when the note is good, else the reason it is not.
    """
    rel = audio_relpath(note_str)
    try:
        with sf.SoundFile(source.open_audio(rel)) as f:
            reason = check_audio_header(f, rel)
            if reason is not None:
                return reason
            got = f.read(frames=nsynth.NUM_FRAMES, dtype="int16", out=out)
    except FileNotFoundError:
        return f"{rel}: file not found"
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        if not source.exists(rel):
            return f"{rel}: file not found"
        return f"{rel}: unreadable ({err})"
    if len(got) != nsynth.NUM_FRAMES:
        return f"{rel}: truncated, {len(got)} of {nsynth.NUM_FRAMES} frames readable"
    return None


def empty_audio(num_notes: int) -> np.ndarray:
    """A (num_notes, NUM_FRAMES) little-endian int16 buffer for :func:`read_note_into`."""
    return np.empty((num_notes, nsynth.NUM_FRAMES), dtype="<i2")


def build_note_table(notes: Sequence[Note], instrument_ids: Sequence[int],
                     audio: np.ndarray | pa.Array, encoding: str = PCM) -> pa.Table:
    """The Arrow table of accepted notes, in :data:`NOTE_SCHEMA`.

    Args:
        notes: the notes, in row order.
        instrument_ids: dense instrument id of each note.
        audio: (len(notes), NUM_FRAMES) int16, C-contiguous, encoded here by ``encoding``
            (as PCM it becomes the ``audio`` column without a copy: each value is one
            row's 128,000 bytes); or an already encoded binary array of len(notes) values.
        encoding: :data:`~sing_ray.data.codec.PCM` or :data:`~sing_ray.data.codec.FLAC`.

    Returns:
        the table.
    """
    n = len(notes)
    if isinstance(audio, pa.Array):
        if len(audio) != n:
            raise ValueError(f"{len(audio)} audio values for {n} notes")
        audio_col = audio
    else:
        if audio.shape != (n, nsynth.NUM_FRAMES):
            raise ValueError(f"audio is {audio.shape}, expected ({n}, {nsynth.NUM_FRAMES})")
        audio_col = audio_column(audio, encoding)
    metas = [note.meta for note in notes]
    columns = {
        "note_str": [note.note_str for note in notes],
        "instrument": list(instrument_ids),
        "instrument_str": [m["instrument_str"] for m in metas],
        "instrument_family": [m["instrument_family"] for m in metas],
        "instrument_family_str": [m["instrument_family_str"] for m in metas],
        "instrument_source": [m["instrument_source"] for m in metas],
        "instrument_source_str": [m["instrument_source_str"] for m in metas],
        "pitch": [m["pitch"] for m in metas],
        "velocity": [m["velocity"] for m in metas],
        "qualities": [m["qualities"] for m in metas],
        "sample_rate": [m["sample_rate"] for m in metas],
        "split": [note.split for note in notes],
    }
    arrays = [pa.array(columns[f.name], type=f.type) for f in NOTE_SCHEMA if f.name != "audio"]
    return pa.Table.from_arrays(arrays + [audio_col], schema=NOTE_SCHEMA)


def parquet_options(compression: str = "snappy") -> dict:
    """``pyarrow.parquet.write_table``'s options for a shard whose ``audio`` column gets ``compression``."""
    options = dict(PARQUET_OPTIONS, compression=parquet_compression(compression, METADATA_COLUMNS))
    if compression == "zstd":
        options["compression_level"] = {"audio": ZSTD_LEVEL}
    return options


def write_table(table: pa.Table, where: Location, relpath: str, compression: str = "snappy",
                atomic: bool = False) -> None:
    """Write one Parquet file under ``where`` with fixed options, so equal tables give equal bytes.

    Args:
        table: a shard (in :data:`NOTE_SCHEMA`, written with :data:`PARQUET_OPTIONS`)
            or any small table such as the rejects.
        where: the dataset folder.
        relpath: the file's path inside it.
        compression: Parquet compression of a shard's ``audio`` column (``snappy``,
            ``zstd`` or ``none``; see :mod:`sing_ray.data.codec`).
        atomic: build the file in memory and publish it whole
            (:meth:`~sing_ray.data.storage.Location.write_atomic`), so that no reader,
            nor a later run after a kill, ever finds it half written.
    """
    options = parquet_options(compression) if table.schema.equals(NOTE_SCHEMA) else {"compression": "snappy"}
    if not atomic:
        pq.write_table(table, where.join(relpath), filesystem=where.fs, **options)
        return
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **options)
    where.write_atomic(sink.getvalue(), relpath)


def rejects_table(rejects: Sequence[tuple[str, str, str]]) -> pa.Table:
    """``rejects.parquet``'s table from (note_str, path, reason) triples, sorted by note_str."""
    rows = sorted(rejects)
    return pa.Table.from_arrays(
        [pa.array([r[i] for r in rows], type=pa.string()) for i in range(3)], schema=REJECT_SCHEMA)


@dataclass(frozen=True)
class Reject:
    """A listed note that did not make it, and why.

    Attributes:
        note_str: the note.
        reason: what a person can act on, naming examples.json or the WAV.
        sane_metadata: False when examples.json's entry was the problem (such a
            note counts under the ``unknown`` split).
    """

    note_str: str
    reason: str
    sane_metadata: bool


def read_and_check(source: Location, notes: Sequence[Note], strict: bool = False,
                   buffer: np.ndarray | None = None) -> tuple[list[Note], np.ndarray, list[Reject]]:
    """Check the metadata of some notes, then decode and check their WAVs into one buffer.

    Args:
        source: the NSynth-layout folder.
        notes: the notes (placed, unchecked).
        strict: stop at the first bad note (it is the last reject).
        buffer: an :func:`empty_audio` buffer of at least ``len(notes)`` rows to decode
            into, reused shard after shard: a fresh 64 MB buffer per shard costs the
            kernel a page fault and a zeroed page per 4 KiB, which two processes
            reading at once contend for. The returned audio then lives in it, until
            the next call overwrites it. None: a new buffer.

    Returns:
        (accepted notes, their audio (A, NUM_FRAMES) int16, rejects).
    """
    notes = list(notes)  # once: a listing's NoteIndex reads the entries as it is iterated
    if buffer is not None and len(buffer) < len(notes):
        raise ValueError(f"buffer of {len(buffer)} rows for {len(notes)} notes")
    audio = empty_audio(len(notes)) if buffer is None else buffer[:len(notes)]
    keep = np.zeros(len(notes), dtype=bool)
    rejects: list[Reject] = []
    for i, note in enumerate(notes):
        reason = check_metadata(note.note_str, note.meta)
        if reason is not None:
            rejects.append(Reject(note.note_str, reason, False))
        else:
            reason = read_note_into(source, note.note_str, audio[i])
            if reason is None:
                keep[i] = True
            else:
                rejects.append(Reject(note.note_str, reason, True))
        if strict and rejects:
            break
    if rejects:
        # Rare: compact the good rows (one copy) so the buffer stays contiguous.
        audio = audio[keep]
    accepted = [note for note, k in zip(notes, keep) if k]
    return accepted, audio, rejects
