"""Writing notes straight into the ingested Parquet layout, with no NSynth folder in between.

A corpus rendered from SoundFonts need never exist as WAVs: its builder hands
each note's metadata and samples to a :class:`ParquetNoteWriter`, which checks
them as ``sing-ray data ingest`` checks a WAV and its examples.json entry
(:func:`sing_ray.data.notes.check_metadata`, and the samples' type and length),
and writes the layout of docs/architecture.md#data-contracts:

```
<out>/
  notes/part-<split>-NNNNN.parquet   written whole (atomically) when a split's buffer fills
  _rejects/part-NNNNN.parquet        rejects so far, written with each shard
  _writer.json                       the writer's settings, while it works
  rejects.parquet, manifest.json, _SUCCESS    written by close()
```

Notes go to one buffer per split; a buffer that reaches ``rows_per_shard``
notes becomes one shard file, sorted by note_str, so memory holds at most three
buffers of encoded notes (FLAC: about 37 kB a note). A kill loses only the
buffered notes: a new writer on the same folder reads back which notes the
shards and reject files hold (:meth:`ParquetNoteWriter.done`) and goes on,
numbering its shards after the ones found; no note is written twice.
:meth:`ParquetNoteWriter.close` writes the rest, renumbers instrument ids to be
dense over the accepted notes if some instrument has none (as ingest does),
and writes rejects.parquet, manifest.json and, last, _SUCCESS.

Only one writer may work on a folder at a time.
"""
from __future__ import annotations

import json
import logging
import re
from collections import Counter
from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from .. import nsynth
from ..errors import UserError
from .codec import FLAC, audio_choice, encode_flac
from .layout import build_manifest, renumber_shards, split_counts, write_manifest
from .notes import Note, build_note_table, check_metadata, place_note, rejects_table, write_table
from .storage import TMP_MARK, resolve

log = logging.getLogger(__name__)

DEFAULT_ROWS_PER_SHARD = 512      # as ingest's: 64 MiB of PCM, about 19 MiB of FLAC per file
WRITER_FILE = "_writer.json"
REJECTS_DIR = "_rejects"
_SHARD_RE = re.compile(r"^part-(?P<split>train|valid|test)-(?P<index>\d{5,})\.parquet$")
_REJECTS_RE = re.compile(r"^part-(?P<index>\d{5,})\.parquet$")
_SETTINGS = ("instruments", "audio", "split_seed")


class ParquetNoteWriter:
    """Notes in, an ingested dataset out; resumable after a kill (see the module's docstring).

    Args:
        out: the dataset folder (local path or URI).
        instruments: every instrument_str that may come; dense id = index in
            ``nsynth.build_vocabulary(instruments)``, as ingest numbers them.
        audio: how the ``audio`` column is stored: ``flac`` (default), ``pcm`` or ``zstd``
            (see :mod:`sing_ray.data.codec`).
        rows_per_shard: notes per shard file (None: 512).
        split_seed: seed of the (instrument_str, pitch) hash that assigns splits.
        source: what the notes come from, for the manifest (e.g. the SoundFonts).
        overwrite: start afresh, deleting what a direct writer or an ingest left at
            ``out``. Without it, a folder that a direct writer left with the same settings
            (instruments, audio, split_seed) is resumed, finished or not (a finished one
            loses its _SUCCESS until :meth:`close`); other settings, or a dataset another
            tool made, are refused with a UserError. A non-empty folder that is neither
            is refused either way.
        progress_every: log a line with the counts every this many notes (0: never).
    """

    def __init__(self, out: str, instruments: Sequence[str], *, audio: str = "flac",
                 rows_per_shard: int | None = None, split_seed: int = nsynth.DEFAULT_SPLIT_SEED,
                 source: str = "", overwrite: bool = False, progress_every: int = 10000):
        try:
            self.encoding, self.compression = audio_choice(audio)
        except ValueError as err:
            raise UserError(str(err)) from None
        self.audio = audio
        self.rows_per_shard = DEFAULT_ROWS_PER_SHARD if rows_per_shard is None else int(rows_per_shard)
        from .ingest import MAX_ROWS_PER_SHARD

        if not 1 <= self.rows_per_shard <= MAX_ROWS_PER_SHARD:
            raise UserError(f"rows per shard must be between 1 and {MAX_ROWS_PER_SHARD}, "
                            f"got {self.rows_per_shard}")
        self.vocabulary = nsynth.build_vocabulary(instruments)
        if not self.vocabulary:
            raise UserError("the direct writer needs at least one instrument")
        self.index = {name: i for i, name in enumerate(self.vocabulary)}
        self.split_seed = int(split_seed)
        self.source = source
        self.progress_every = progress_every
        self.where = resolve(out)
        self._overwrite = bool(overwrite)
        self._closed = False
        # What is on disk: accepted notes' names and instruments per shard, and rejects.
        self._shards: list[dict] = []             # {"path", "split", "num_rows"}
        self._written: set[str] = set()           # note_strs in shard files
        self._instruments_written: Counter = Counter()
        self._rejects: dict[str, tuple[str, str, str | None]] = {}   # note_str -> (path, reason, split)
        self._rejects_flushed = 0                 # how many of _rejects are in _rejects/ files
        self._next_shard = {s: 0 for s in nsynth.SPLITS}
        self._next_rejects = 0
        # What is buffered: per split, notes and their encoded audio.
        self._buffers: dict[str, list[tuple[Note, bytes]]] = {s: [] for s in nsynth.SPLITS}
        self._buffered: set[str] = set()
        self._added = 0
        self._open()

    # -- opening -------------------------------------------------------------------------------

    def _settings(self) -> dict:
        return {"instruments": self.vocabulary, "audio": self.audio, "split_seed": self.split_seed}

    def _open(self) -> None:
        where = self.where
        info = where.info()
        if info.type == pafs.FileType.File:
            raise UserError(f"{where.uri}: exists and is not a folder")
        if info.type == pafs.FileType.NotFound or not where.list_files():
            self._start_fresh()
            return
        previous = self._previous_settings()
        if previous is None:
            raise UserError(f"{where.uri}: a non-empty folder that is not a sing-ray dataset or direct "
                            "writer's folder; refusing to write there (choose a new folder)")
        if self._overwrite:
            where.fs.delete_dir_contents(where.path)
            self._start_fresh()
            return
        differs = [k for k in _SETTINGS if previous.get(k) != self._settings()[k]]
        if differs:
            raise UserError(f"{where.uri}: written by a direct writer with other {', '.join(differs)}; "
                            "resume with the same settings, or pass overwrite=True to start afresh")
        if where.exists("_SUCCESS"):
            # Reopened: no longer a finished dataset until close() writes it again.
            where.delete("_SUCCESS")
        self._write_settings()
        self._resume()

    def _previous_settings(self) -> dict | None:
        """The settings of the writer that made the folder, or None if no writer made it."""
        for name in (WRITER_FILE, "manifest.json"):
            if self.where.exists(name):
                try:
                    data = json.loads(self.where.read_bytes(name))
                except (OSError, json.JSONDecodeError) as err:
                    raise UserError(f"{self.where.display(name)}: unreadable ({err})") from None
                settings = data.get("writer") if name == "manifest.json" else data
                if name == "manifest.json" and not isinstance(settings, dict):
                    if not self._overwrite:
                        raise UserError(f"{self.where.uri}: a dataset already exists there (not made by "
                                        "the direct writer); pass overwrite=True to replace it")
                    return {}
                return settings if isinstance(settings, dict) else None
        return None

    def _start_fresh(self) -> None:
        self.where.makedirs("notes")
        self._write_settings()

    def _write_settings(self) -> None:
        self.where.write_atomic((json.dumps(self._settings(), indent=1) + "\n").encode(), WRITER_FILE)

    def _resume(self) -> None:
        """Read back what an earlier writer left: shard files, reject files, stray temporary files."""
        where = self.where
        for rel in where.list_files():
            name = rel.rsplit("/", 1)[-1]
            if TMP_MARK in name:
                where.delete(rel)        # a write cut short: its notes were never counted
                continue
            folder = rel.rsplit("/", 1)[0] if "/" in rel else ""
            if folder == "notes":
                match = _SHARD_RE.match(name)
                if match is None:
                    raise UserError(f"{where.display(rel)}: not a shard this writer wrote; "
                                    "remove it or start a new folder")
                self._read_shard(rel, match["split"])
                self._next_shard[match["split"]] = max(self._next_shard[match["split"]],
                                                       int(match["index"]) + 1)
            elif folder == REJECTS_DIR:
                match = _REJECTS_RE.match(name)
                if match is not None:
                    self._read_rejects(rel)
                    self._next_rejects = max(self._next_rejects, int(match["index"]) + 1)
        if where.exists("rejects.parquet"):
            self._read_rejects("rejects.parquet")
        self._rejects_flushed = len(self._rejects)
        if self._written or self._rejects:
            log.info("%s: resuming after %d written and %d rejected note(s) in %d shard(s)", where.uri,
                     len(self._written), len(self._rejects), len(self._shards))

    def _read_shard(self, rel: str, split: str) -> None:
        with self.where.fs.open_input_file(self.where.join(rel)) as handle:
            table = pq.read_table(handle, columns=["note_str", "instrument_str"])
        note_strs = table.column("note_str").to_pylist()
        twice = self._written.intersection(note_strs)
        if twice:
            raise UserError(f"{self.where.display(rel)}: holds note(s) already in another shard, "
                            f"e.g. {sorted(twice)[0]}")
        unknown = set(table.column("instrument_str").to_pylist()) - set(self.index)
        if unknown:
            raise UserError(f"{self.where.display(rel)}: instrument(s) {', '.join(sorted(unknown))} "
                            "are not in this writer's instruments")
        self._written.update(note_strs)
        self._instruments_written.update(table.column("instrument_str").to_pylist())
        self._shards.append({"path": rel, "split": split, "num_rows": table.num_rows})

    def _read_rejects(self, rel: str) -> None:
        with self.where.fs.open_input_file(self.where.join(rel)) as handle:
            table = pq.read_table(handle)
        for note_str, path, reason in zip(*(table.column(c).to_pylist() for c in ("note_str", "path", "reason"))):
            if note_str not in self._written:
                self._rejects[note_str] = (path, reason, _split_of_name(note_str, self.split_seed))

    # -- writing -------------------------------------------------------------------------------

    def done(self) -> set[str]:
        """The note_strs this folder already holds, accepted or rejected, so a resumed build skips them.

        Written by an earlier writer (read back when this one opened), or given to
        this one; a new set on each call (call it once, not per note).
        """
        return self._written | set(self._rejects) | self._buffered

    def add(self, meta: Mapping, pcm: np.ndarray) -> None:
        """Check one note and buffer it, or count it as a reject with its reason.

        Args:
            meta: the note's NSynth examples.json fields, ``note_str`` included.
            pcm: (NUM_FRAMES,) int16: its samples.

        A note whose metadata or samples fail ingest's checks becomes a reject
        (rejects.parquet). ValueError for a note given twice or a meta with no
        note_str (it could not be named in the rejects).
        """
        note_str = meta.get("note_str") if isinstance(meta, Mapping) else None
        if not isinstance(note_str, str) or not note_str:
            raise ValueError(f"the note's metadata has no note_str: {meta!r:.200}")
        self._check_new(note_str)
        reason = check_metadata(note_str, meta)
        if reason is None and meta["instrument_str"] not in self.index:
            reason = (f"examples.json: instrument_str {meta['instrument_str']!r} is not one of the "
                      f"writer's {len(self.index)} instruments")
        if reason is not None:
            # As in ingest, a note whose metadata is not sane has no trustworthy split.
            self._reject(note_str, reason, None)
            return
        split = place_note(meta, self.split_seed)
        reason = check_samples(pcm)
        if reason is not None:
            self._reject(note_str, reason, split)
            return
        samples = np.ascontiguousarray(pcm, dtype="<i2")
        value = encode_flac(samples) if self.encoding == FLAC else samples.tobytes()
        self._buffers[split].append((Note(note_str, dict(meta), split), value))
        self._buffered.add(note_str)
        self._count()
        if len(self._buffers[split]) >= self.rows_per_shard:
            self._flush(split)

    def reject(self, note_str: str, reason: str, path: str = "") -> None:
        """Count a note that never got samples (e.g. its rendering failed) as a reject.

        Args:
            note_str: the note; its split comes from its name when that parses, else ``unknown``.
            reason: what a person can act on.
            path: where the note would have come from (rejects.parquet's ``path``).
        """
        self._check_new(note_str)
        self._reject(note_str, str(reason), _split_of_name(note_str, self.split_seed), path)

    def _check_new(self, note_str: str) -> None:
        if self._closed:
            raise RuntimeError(f"{self.where.uri}: the writer is closed")
        if note_str in self._written or note_str in self._buffered or note_str in self._rejects:
            raise ValueError(f"{note_str}: already given to this dataset (skip the notes in done())")

    def _reject(self, note_str: str, reason: str, split: str | None, path: str = "") -> None:
        self._rejects[note_str] = (path or self.source, reason, split)
        self._count()

    def _count(self) -> None:
        self._added += 1
        if self.progress_every and self._added % self.progress_every == 0:
            log.info("%s: %d note(s) given, %d written, %d buffered, %d rejected", self.where.uri,
                     self._added, len(self._written), len(self._buffered), len(self._rejects))

    def _flush(self, split: str) -> None:
        """Write a split's buffer as one shard file (atomically), then the rejects so far."""
        buffered = sorted(self._buffers[split], key=lambda item: item[0].note_str)
        if buffered:
            notes = [note for note, _ in buffered]
            audio = pa.array([value for _, value in buffered], type=pa.binary())
            ids = [self.index[n.meta["instrument_str"]] for n in notes]
            path = f"notes/part-{split}-{self._next_shard[split]:05d}.parquet"
            write_table(build_note_table(notes, ids, audio), self.where, path, self.compression, atomic=True)
            self._next_shard[split] += 1
            self._shards.append({"path": path, "split": split, "num_rows": len(notes)})
            for note in notes:
                self._written.add(note.note_str)
                self._buffered.discard(note.note_str)
            self._instruments_written.update(n.meta["instrument_str"] for n in notes)
            self._buffers[split] = []
        self._flush_rejects()

    def _flush_rejects(self) -> None:
        pending = list(self._rejects.items())[self._rejects_flushed:]
        if not pending:
            return
        table = rejects_table([(s, path, reason) for s, (path, reason, _) in pending])
        self.where.makedirs(REJECTS_DIR)
        write_table(table, self.where, f"{REJECTS_DIR}/part-{self._next_rejects:05d}.parquet", atomic=True)
        self._next_rejects += 1
        self._rejects_flushed = len(self._rejects)

    def close(self) -> dict:
        """Write what is buffered, then rejects.parquet, manifest.json and _SUCCESS; return the manifest.

        Raises UserError if no note was accepted (a dataset needs one).
        """
        if self._closed:
            raise RuntimeError(f"{self.where.uri}: the writer is already closed")
        for split in nsynth.SPLITS:
            self._flush(split)
        self._flush_rejects()
        if not self._written:
            raise UserError(f"{self.where.uri}: no note was accepted "
                            f"({len(self._rejects)} rejected); nothing to make a dataset of")
        final = nsynth.build_vocabulary(self._instruments_written)
        shards = sorted(self._shards, key=lambda s: s["path"])
        if final != self.vocabulary:
            log.warning("%s: instrument(s) %s have no accepted note; renumbering instrument ids",
                        self.where.uri, ", ".join(sorted(set(self.vocabulary) - set(final))[:10]))
            renumber_shards(pa.table({"path": [s["path"] for s in shards]}), self.where, final,
                            self.compression)
        rejects = sorted(self._rejects.items())
        write_table(rejects_table([(s, path, reason) for s, (path, reason, _) in rejects]),
                    self.where, "rejects.parquet", atomic=True)
        splits = split_counts(((s["split"], s["num_rows"]) for s in shards),
                              (split for _, (_, _, split) in rejects))
        manifest = build_manifest(
            source=self.source, examples_sha256=None, listed=len(self._written) + len(rejects),
            splits=splits, instruments=final, audio=self.audio, rows_per_shard=self.rows_per_shard,
            shards=shards, split_seed=self.split_seed, extra={"writer": self._settings()})
        self.where.write_atomic((json.dumps(manifest, indent=2) + "\n").encode(), "manifest.json")
        if self.where.exists(REJECTS_DIR):
            self.where.fs.delete_dir(self.where.join(REJECTS_DIR))
        if self.where.exists(WRITER_FILE):
            self.where.delete(WRITER_FILE)
        write_manifest(self.where, manifest)
        self._closed = True
        log.info("%s: %d listed = %d accepted + %d rejected, %d shard(s)", self.where.uri,
                 manifest["counts"]["listed"], manifest["counts"]["accepted"],
                 manifest["counts"]["rejected"], len(shards))
        return manifest


def check_samples(pcm) -> str | None:
    """Reason a note's samples are not one NSynth note (ingest's WAV header checks), or None."""
    if not isinstance(pcm, np.ndarray):
        return f"audio: a {type(pcm).__name__}, expected a numpy array of int16 samples"
    if pcm.dtype != np.int16:
        return f"audio: {pcm.dtype} samples, expected 16-bit PCM (int16)"
    if pcm.ndim != 1:
        return f"audio: shape {pcm.shape}, expected mono ({nsynth.NUM_FRAMES},)"
    if len(pcm) != nsynth.NUM_FRAMES:
        return f"audio: {len(pcm)} frames, expected {nsynth.NUM_FRAMES}"
    return None


def _split_of_name(note_str: str, split_seed: int) -> str | None:
    """The split a note's name places it in, or None when the name does not parse."""
    try:
        instrument, pitch, _ = nsynth.parse_note_str(note_str)
    except (ValueError, TypeError):
        return None
    return nsynth.split_of(instrument, pitch, split_seed)

