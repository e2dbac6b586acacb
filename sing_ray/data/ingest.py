"""NSynth-layout folder -> validated Parquet dataset, with Ray Data.

The work, in order:

1. The driver streams ``examples.json`` (:mod:`sing_ray.data.examples`; a
   malformed one, or a missing ``audio/``, is a :class:`UserError` before
   anything is written), gives each entry its split (the seeded hash of
   (instrument, pitch)) and lists ``audio/`` once, which tells the WAVs that no
   entry lists. It does no more per note, because nothing it does runs in
   parallel, and keeps per note only a :class:`~sing_ray.data.examples.NoteIndex`
   row (note_str, split, instrument, where its entry lies: about 50 bytes), so
   its memory stays flat however many notes there are.
2. The notes are planned into shards: per split, sorted by ``note_str``,
   ``rows_per_shard`` at a time, so shard contents depend only on the input.
3. The shards are grouped into tasks of nearly equal note counts, and a Ray
   Dataset with one row per task goes through ``map_batches``: each task decodes
   and checks its WAVs with soundfile, straight into one buffer per shard that
   becomes the shard's ``audio`` column (after reading its notes' entries back
   from examples.json by byte range and checking them), and writes whole
   ``notes/part-<split>-NNNNN.parquet`` files. Audio never travels through the
   object store; only small per-shard reports come back to the driver.
4. Dense instrument ids come from the sorted vocabulary of the notes' instruments.
   Should a WAV check remove every note of an instrument, the shards are
   renumbered so that ids stay dense over the accepted notes.
5. ``rejects.parquet``, ``manifest.json`` and last ``_SUCCESS`` are written.

Locally everything is written into a hidden sibling folder that is renamed into
place at the end, so a failure never leaves something that looks like a dataset.
That folder is named after the inputs and keeps a report per finished shard, so
an ingest killed midway is resumed by the same command (:mod:`sing_ray.data.resume`).
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import pyarrow as pa
from pyarrow import fs as pafs

from .. import nsynth
from ..errors import UserError, ValidationError
from .examples import ExamplesFile, NoteIndex, decode_shard, index_examples
from .notes import (Note, audio_relpath, build_note_table, empty_audio, read_and_check, rejects_table,
                    write_table)
from .codec import DEFAULT_AUDIO, audio_choice
from .layout import (UNKNOWN_SPLIT, build_manifest, renumber_shards, split_counts,  # noqa: F401
                     write_manifest)
from .resume import REPORTS_DIR, clear_reports, load_reports, save_report, staging_name
from .schema import SCHEMA_VERSION
from .storage import Location, resolve

log = logging.getLogger(__name__)

DEFAULT_ROWS_PER_SHARD = 512                                 # 64 MiB of audio per file
TARGET_NOTES_PER_TASK = 4096                                 # about a second of work per write task
MAX_ROWS_PER_SHARD = (2**31 - 1) // (nsynth.NUM_FRAMES * 2)  # Arrow binary: 2 GiB per column chunk
LOG_EVERY_SECONDS = 10.0
NAMES_BATCH = 16384   # audio/ names checked against the listed keys at a time


@dataclass
class IngestSummary:
    """What an ingest did. ``listed == accepted + rejected``, overall and per split.

    Attributes:
        source: the NSynth-layout folder read.
        out: the dataset written.
        listed: notes in examples.json.
        accepted: notes written to ``notes/``.
        rejected: notes written to ``rejects.parquet``.
        unlisted_wavs: WAVs in ``audio/`` that examples.json does not list (not notes).
        splits: per split (and ``unknown``), ``{"listed", "accepted", "rejected"}``.
        num_instruments: size of the instrument vocabulary.
        num_shards: Parquet files under ``notes/``.
        seconds: wall time of the ingest.
        reasons: the most frequent reject reasons' counts, keyed by reason with the
            file name removed (``"44100 Hz, expected 16000": 3``).
    """

    source: str
    out: str
    listed: int
    accepted: int
    rejected: int
    unlisted_wavs: int
    splits: dict[str, dict[str, int]]
    num_instruments: int
    num_shards: int
    seconds: float
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def notes_per_second(self) -> float:
        return self.listed / self.seconds if self.seconds > 0 else float("inf")

    def reconciles(self) -> bool:
        """True when every listed note is accounted for, overall and in each split."""
        per_split = all(c["listed"] == c["accepted"] + c["rejected"] for c in self.splits.values())
        totals = all(sum(c[k] for c in self.splits.values()) == getattr(self, k)
                     for k in ("listed", "accepted", "rejected"))
        return per_split and totals and self.listed == self.accepted + self.rejected

    def format(self) -> str:
        """The summary a person reads at the end of ``sing-ray data ingest``."""
        lines = [
            f"ingested {self.source} -> {self.out}",
            f"  {self.listed} listed = {self.accepted} accepted + {self.rejected} rejected"
            f"{'' if self.reconciles() else '   (DOES NOT RECONCILE)'}",
        ]
        for split, c in self.splits.items():
            lines.append(f"  {split:>8}: {c['listed']:>7} listed = {c['accepted']:>7} accepted"
                         f" + {c['rejected']:>5} rejected")
        lines.append(f"  {self.num_instruments} instruments, {self.num_shards} shard(s), "
                     f"{self.seconds:.1f} s, {self.notes_per_second:.0f} notes/s")
        if self.unlisted_wavs:
            lines.append(f"  {self.unlisted_wavs} WAV(s) in audio/ not listed in examples.json "
                         "(ignored; see manifest.json)")
        for reason, count in self.reasons.items():
            lines.append(f"  rejected {count} x: {reason}")
        if self.rejected:
            lines.append(f"  every reject, with its reason: {self.out.rstrip('/')}/rejects.parquet")
        return "\n".join(lines)


@dataclass(frozen=True)
class Listing:
    """What examples.json and audio/ say, before any WAV is opened.

    Attributes:
        notes: notes placed in a split, grouped by split and sorted by note_str
            within each (not checked yet): a compact
            :class:`~sing_ray.data.examples.NoteIndex` whose entries are read back
            from examples.json when it is iterated.
        rejects: (note_str, reason) of listed entries too broken to place, sorted.
        listed: number of distinct keys in examples.json.
        unlisted: WAV names in audio/ that no entry lists, sorted.
        sha256: checksum of examples.json's bytes.
        instruments: the sorted instrument names of ``notes`` (the vocabulary
            before any WAV is checked).
    """

    notes: NoteIndex
    rejects: list[tuple[str, str]]
    listed: int
    unlisted: list[str]
    sha256: str
    instruments: list[str] = field(default_factory=list)


def _check_examples_file(source: Location) -> None:
    """A clear UserError when the folder or its examples.json is missing or not a file."""
    where = source.display("examples.json")
    if not source.is_dir():
        raise UserError(f"{source.uri}: no such folder (expected an NSynth-layout folder "
                        "with examples.json and audio/)")
    kind = source.info("examples.json").type
    if kind == pafs.FileType.NotFound:
        raise UserError(f"{where}: not found (an NSynth-layout folder holds examples.json and audio/)")
    if kind != pafs.FileType.File:
        raise UserError(f"{where}: not a file")


def list_source(source: Location, split_seed: int = nsynth.DEFAULT_SPLIT_SEED) -> Listing:
    """Stream examples.json, list audio/ and place every note in its split (no WAV is opened).

    Memory stays flat in the number of notes: examples.json is parsed one entry
    at a time (:func:`~sing_ray.data.examples.index_examples`) and audio/'s names
    are checked against the listed keys a batch at a time.

    Args:
        source: the NSynth-layout folder.
        split_seed: seed of the (instrument, pitch) hash that assigns splits.

    Returns:
        the :class:`Listing`. Raises UserError for a malformed examples.json or missing audio/.
    """
    _check_examples_file(source)
    indexed = index_examples(source, split_seed)
    if not source.is_dir("audio"):
        raise UserError(f"{source.display('audio')}: missing (NSynth keeps each note's "
                        "WAV in audio/<note_str>.wav)")
    unlisted = _unlisted_wavs(_wav_names(source), indexed.notes, {s for s, _ in indexed.rejects})
    return Listing(indexed.notes, indexed.rejects, indexed.listed, unlisted, indexed.sha256,
                   indexed.vocabulary)


def _wav_names(source: Location) -> Iterator[str]:
    """Names of the plain files in audio/ ending in .wav (any case), one at a time where local."""
    if source.is_local:
        with os.scandir(source.join("audio")) as entries:
            for entry in entries:
                if entry.name.lower().endswith(".wav") and entry.is_file():
                    yield entry.name
        return
    yield from (name for name in source.list_names("audio") if name.lower().endswith(".wav"))


def _unlisted_wavs(names: Iterable[str], notes: NoteIndex, rejected: set[str]) -> list[str]:
    """The WAV names whose stem no key of examples.json names (placed in ``notes`` or
    ``rejected``), sorted; checked :data:`NAMES_BATCH` names at a time."""
    unlisted: list[str] = []
    batch: list[str] = []

    def check() -> None:
        stems = [name[:-4] for name in batch]
        known = notes.contains(stems)
        unlisted.extend(name for name, stem, k in zip(batch, stems, known) if not k and stem not in rejected)
        batch.clear()

    for name in names:
        batch.append(name)
        if len(batch) == NAMES_BATCH:
            check()
    check()
    return sorted(unlisted)


def plan_shards(notes: NoteIndex | Iterable[Note], rows_per_shard: int) -> list[tuple[str, str, list[Note]]]:
    """Group notes into shards: per split, sorted by note_str, ``rows_per_shard`` at a time.

    Args:
        notes: notes to write: a listing's :class:`~sing_ray.data.examples.NoteIndex`
            (already grouped and sorted: each shard is a slice of it, nothing is
            copied and no entry is read) or any notes.
        rows_per_shard: notes per Parquet file (the last of a split may hold fewer).

    Returns:
        (relative file path, split, notes) per shard, in a fixed order; the notes
        are a NoteIndex slice when ``notes`` is a NoteIndex.
    """
    if isinstance(notes, NoteIndex):
        return [(f"notes/part-{split}-{k:05d}.parquet", split, group[start:start + rows_per_shard])
                for split in nsynth.SPLITS for group in [notes.split(split)]
                for k, start in enumerate(range(0, len(group), rows_per_shard))]
    by_split: dict[str, list[Note]] = {s: [] for s in nsynth.SPLITS}
    for note in notes:
        by_split[note.split].append(note)
    shards = []
    for split in nsynth.SPLITS:
        group = sorted(by_split[split], key=lambda n: n.note_str)
        for k, start in enumerate(range(0, len(group), rows_per_shard)):
            shards.append((f"notes/part-{split}-{k:05d}.parquet", split, group[start:start + rows_per_shard]))
    return shards


def group_shards(shards: list, num_tasks: int) -> list[list]:
    """Spread shards over ``num_tasks`` groups of nearly equal note counts.

    Longest first, each to the least loaded group; a group keeps plan order.

    Args:
        shards: (path, split, notes) as :func:`plan_shards` returns them.
        num_tasks: how many groups (at most one per shard).

    Returns:
        the non-empty groups.
    """
    num_tasks = max(1, min(num_tasks, len(shards)))
    loads = [0] * num_tasks
    members: list[list[int]] = [[] for _ in range(num_tasks)]
    for i in sorted(range(len(shards)), key=lambda i: (-len(shards[i][2]), i)):
        k = loads.index(min(loads))
        loads[k] += len(shards[i][2])
        members[k].append(i)
    return [[shards[i] for i in sorted(group)] for group in members if group]


def _task_row(group: list, vocab: list[str]) -> dict:
    """One input row of the Ray Dataset: everything one task needs to write its shards.

    Each shard's notes travel as a few dozen bytes a note
    (:meth:`~sing_ray.data.examples.NoteIndex.encode`: note_str, dense instrument
    id, where its entry lies in examples.json); the task reads the entries itself.
    """
    return {
        "paths": [path for path, _, _ in group],
        "splits": [split for _, split, _ in group],
        "notes": [notes.encode(vocab) for _, _, notes in group],
    }


def write_shards(batch: pa.Table, source: Location, dest: Location, strict: bool,
                 audio: str = DEFAULT_AUDIO, record: bool = False,
                 examples: ExamplesFile | None = None) -> pa.Table:
    """Ray Data UDF: decode, check and write the shards of a batch (one row per task).

    Args:
        batch: rows made by :func:`_task_row`, each listing whole shards.
        source: the NSynth-layout folder.
        dest: the folder being written (the hidden staging folder when local).
        strict: stop at the first bad note; its shard is not written.
        audio: how the ``audio`` column is stored (``pcm``, ``zstd`` or ``flac``,
            see :mod:`sing_ray.data.codec`).
        record: after each shard, save its report in ``dest`` (:mod:`sing_ray.data.resume`),
            so that an ingest killed midway resumes after it.
        examples: where the notes' entries are read back from (the listing's
            ``notes.file``; None: ``source``'s UTF-8 examples.json).

    Every note's entry is read from examples.json and checked here, in parallel,
    before its WAV is read.

    Returns:
        one report row per shard: path, split, num_listed, num_rows, the accepted
        instrument names, and the rejected note_strs with their reasons.
    """
    encoding, compression = audio_choice(audio)
    examples = examples or ExamplesFile(source)
    reports = []
    rows = batch.to_pylist()
    shards = [(path, split, decode_shard(data)) for row in rows
              for path, split, data in zip(row["paths"], row["splits"], row["notes"])]
    # One decode buffer for every shard of this task (see read_and_check).
    buffer = empty_audio(max((index.num_rows for _, _, index in shards), default=0))
    for path, split, index in shards:
        note_strs = index.column("note_str").to_pylist()
        entries = examples.read(note_strs, index.column("offset").to_numpy(),
                                index.column("length").to_numpy())
        notes = [Note(s, m, split) for s, m in zip(note_strs, entries)]
        ids = dict(zip(note_strs, index.column("instrument").to_pylist()))
        accepted, samples, rejects = read_and_check(source, notes, strict=strict, buffer=buffer)
        written = 0
        if accepted and not (strict and rejects):
            table = build_note_table(accepted, [ids[n.note_str] for n in accepted], samples,
                                     encoding)
            write_table(table, dest, path, compression)
            written = table.num_rows
        reports.append({
            "path": path, "split": split, "num_listed": len(notes), "num_rows": written,
            "instrument_strs": sorted({n.meta["instrument_str"] for n in accepted}),
            "reject_note_strs": [r.note_str for r in rejects],
            "reject_reasons": [r.reason for r in rejects],
            "reject_sane": [r.sane_metadata for r in rejects],
        })
        if record and not (strict and rejects):
            save_report(dest, reports[-1])
        if strict and rejects:
            return pa.Table.from_pylist(reports, schema=_REPORT_SCHEMA)
    return pa.Table.from_pylist(reports, schema=_REPORT_SCHEMA)


_REPORT_SCHEMA = pa.schema([
    ("path", pa.string()), ("split", pa.string()), ("num_listed", pa.int64()), ("num_rows", pa.int64()),
    ("instrument_strs", pa.list_(pa.string())),
    ("reject_note_strs", pa.list_(pa.string())), ("reject_reasons", pa.list_(pa.string())),
    ("reject_sane", pa.list_(pa.bool_())),
])


def check_destination(out: Location, overwrite: bool) -> bool:
    """Refuse to clobber what should not be. Returns True when ``out`` already exists.

    An existing dataset is replaced only with ``overwrite``; a non-empty folder
    that is not a sing-ray dataset is never replaced, so a mistyped ``--out``
    cannot delete someone's files.
    """
    info = out.info()
    if info.type == pafs.FileType.NotFound:
        return False
    if info.type != pafs.FileType.Directory:
        raise UserError(f"{out.uri}: exists and is not a folder")
    if not out.fs.get_file_info(pafs.FileSelector(out.path, recursive=False)):
        return True
    if not (out.exists("_SUCCESS") or out.exists("manifest.json")):
        raise UserError(f"{out.uri}: a non-empty folder that is not a sing-ray dataset; "
                        "refusing to write there (choose a new --out)")
    if not overwrite:
        raise UserError(f"{out.uri}: a dataset already exists there; pass --overwrite to replace it")
    return True


@contextmanager
def _ray_data_settings():
    """Ray Data settings for the ingest's executions, restored afterwards."""
    import ray.data
    from ray.util.debug import log_once

    ctx = ray.data.DataContext.get_current()
    saved = (ctx.enable_progress_bars, ctx.op_resource_reservation_enabled)
    # Our own bar counts notes; Ray's would count shards, one bar per operator.
    # Ray warns once per process that its bars are off: mark that as said.
    log_once("ray_data_progress_manager_disabled")
    ctx.enable_progress_bars = False
    # With per-operator reservations on, Ray Data gave the write operator the
    # budget of one task at a time on a 2-CPU node (its debug log says
    # "backpressured:tasks(ResourceBudget)"), leaving a core idle. The ingest
    # runs a single operator that does all the work: reservations buy nothing here.
    ctx.op_resource_reservation_enabled = False
    try:
        yield ctx
    finally:
        ctx.enable_progress_bars, ctx.op_resource_reservation_enabled = saved


class _Progress:
    """A tqdm bar in notes (when wanted) and an INFO line with notes/s every few seconds."""

    def __init__(self, total: int, enabled: bool, what: str = "ingest"):
        self.total, self.done, self.what = total, 0, what
        self.start = self.last_log = time.monotonic()
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="note", desc=what, dynamic_ncols=True)

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        now = time.monotonic()
        if now - self.last_log >= LOG_EVERY_SECONDS:
            self.last_log = now
            log.info("%s: %d/%d notes, %.0f notes/s", self.what, self.done, self.total,
                     self.done / max(now - self.start, 1e-9))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _num_tasks(num_notes: int) -> int:
    """How many write tasks: enough for every CPU twice over, and at most
    TARGET_NOTES_PER_TASK notes each.

    Ray Data's executor notices a finished task up to 0.1 s late (it waits on
    running tasks with that timeout), while a shard of 512 notes takes 0.1 to
    0.2 s to check and write: with one task per shard, a CPU could idle for a
    good part of each task. Tasks of a few thousand notes make that delay small,
    while two tasks per CPU keep the CPUs evenly loaded to the end.
    """
    import ray

    num_cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    return max(2 * num_cpus, -(-num_notes // TARGET_NOTES_PER_TASK))


def _run_shards(shards, source: Location, staging: Location, vocab: list[str], strict: bool,
                progress: _Progress, audio: str, record: bool, examples: ExamplesFile) -> list[dict]:
    import ray.data

    groups = group_shards(shards, _num_tasks(sum(len(notes) for _, _, notes in shards)))
    rows = [_task_row(group, vocab) for group in groups]
    # One block per task, and batch_size=None (a batch is a whole block), so each
    # task writes whole files that no other task touches. from_items builds the
    # blocks on the driver (from_arrow would run a remote task per block to describe it).
    ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        write_shards, batch_format="pyarrow", batch_size=None, zero_copy_batch=True,
        fn_kwargs={"source": source, "dest": staging, "strict": strict, "audio": audio,
                   "record": record, "examples": examples})
    del rows, groups
    reports = []
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0):
        for report in batch.to_pylist():
            reports.append(report)
            progress.update(report["num_listed"])
            if strict and report["reject_note_strs"]:
                note_str, reason = report["reject_note_strs"][0], report["reject_reasons"][0]
                raise ValidationError(f"{note_str}: {reason} (--strict stops at the first bad note)")
    return reports


def ingest(source: str, out: str, rows_per_shard: int = DEFAULT_ROWS_PER_SHARD, strict: bool = False,
           overwrite: bool = False, progress: bool = True,
           split_seed: int = nsynth.DEFAULT_SPLIT_SEED, num_cpus: int | None = None,
           audio: str = DEFAULT_AUDIO) -> IngestSummary:
    """Validate an NSynth-layout folder and write it as a Parquet dataset (docs/architecture.md#data-contracts).

    Args:
        source: folder (or URI) with ``examples.json`` and ``audio/<note_str>.wav``.
        out: the dataset folder (or URI) to write.
        rows_per_shard: notes per ``notes/part-*.parquet`` file.
        strict: stop at the first bad note with :class:`ValidationError` (exit status 1)
            instead of recording it in ``rejects.parquet``.
        overwrite: replace an existing dataset at ``out``.
        progress: show a progress bar (a periodic log line with notes/s is always on).
        split_seed: seed of the split hash, recorded in the manifest.
        num_cpus: CPUs of the local Ray started if none is running (None: all).
        audio: how the ``audio`` column is stored: ``pcm`` (raw int16, the default),
            ``zstd`` (raw int16 in a zstd-compressed column) or ``flac`` (one FLAC
            stream per note); see :mod:`sing_ray.data.codec`. Every reader decodes
            each to the same samples.

    Returns:
        the :class:`IngestSummary`. Raises UserError (exit 2) for bad input or an
        existing ``out``, ValidationError (exit 1) for a bad note under ``strict``.
    """
    started = time.monotonic()
    try:
        audio_choice(audio)
    except ValueError as err:
        raise UserError(str(err)) from None
    if not 1 <= rows_per_shard <= MAX_ROWS_PER_SHARD:
        raise UserError(f"rows per shard must be between 1 and {MAX_ROWS_PER_SHARD}, got {rows_per_shard}")
    src, dst = resolve(source), resolve(out)
    if src.is_local and dst.is_local and (dst.path + "/").startswith(src.path + "/"):
        raise UserError(f"{dst.uri}: the dataset must not be written inside its source {src.uri}")
    listing = list_source(src, split_seed)
    dst_exists = check_destination(dst, overwrite)
    if strict and listing.rejects:
        note_str, reason = listing.rejects[0]
        raise ValidationError(f"{note_str}: {reason} (--strict stops at the first bad note)")
    if listing.unlisted:
        log.warning("%d WAV(s) in %s are not listed in examples.json and are ignored, e.g. %s",
                    len(listing.unlisted), src.display("audio"), ", ".join(listing.unlisted[:3]))
    log.info("%s: %d notes listed; checking and writing them", src.uri, listing.listed)

    from ..runtime import init_ray

    init_ray(num_cpus=num_cpus)
    # Locally, build a hidden sibling and rename it into place; object stores
    # have no folder rename, so there we write in place with _SUCCESS last.
    # The sibling is named after the inputs, so that an ingest killed midway
    # is resumed by the same command (see sing_ray.data.resume).
    resumable = dst.is_local
    staging = dst.sibling(staging_name(
        dst.path.rsplit('/', 1)[-1], src.uri, listing.sha256, rows_per_shard=rows_per_shard,
        split_seed=split_seed, audio=audio, strict=strict, schema=SCHEMA_VERSION)) if resumable else dst
    if not dst.is_local and dst_exists:
        dst.fs.delete_dir_contents(dst.path)
    bar = _Progress(listing.listed, progress)
    bar.update(len(listing.rejects))
    try:
        with _ray_data_settings():
            staging.fs.create_dir(staging.join("notes"), recursive=True)
            if resumable:
                staging.fs.create_dir(staging.join(REPORTS_DIR), recursive=True)
            vocab = listing.instruments
            shards = plan_shards(listing.notes, rows_per_shard)
            done = load_reports(staging, {path for path, _, _ in shards}) if resumable else {}
            if done:
                log.info("%s: resuming: %d of %d shard(s) were written by an earlier run", dst.uri,
                         len(done), len(shards))
                bar.update(sum(r["num_listed"] for r in done.values()))
            todo = [shard for shard in shards if shard[0] not in done]
            listed_at = time.monotonic()
            reports = list(done.values())
            if todo:
                reports += _run_shards(todo, src, staging, vocab, strict, bar, audio, resumable,
                                       listing.notes.file)
            written_at = time.monotonic()
            manifest, rejects = _finish(src, staging, listing, reports, vocab, rows_per_shard, split_seed,
                                        audio)
        log.debug("timings: listing %.2f s, %d shard(s) %.2f s, finishing %.2f s",
                  listed_at - started, len(shards), written_at - listed_at, time.monotonic() - written_at)
    except (UserError, ValidationError):
        _remove(staging)
        raise
    except BaseException:
        if resumable:
            log.warning("ingest stopped; the shards written so far stay in %s, and the same command "
                        "resumes after them", staging.uri)
        else:
            _remove(staging)
        raise
    finally:
        bar.close()
    if dst.is_local:
        _publish(staging, dst, dst_exists)

    counts = manifest["counts"]
    summary = IngestSummary(
        source=src.uri, out=dst.uri, listed=counts["listed"], accepted=counts["accepted"],
        rejected=counts["rejected"], unlisted_wavs=counts["unlisted_wavs"],
        splits=manifest["splits"], num_instruments=len(manifest["instruments"]),
        num_shards=len(manifest["shards"]), seconds=time.monotonic() - started,
        reasons=dict(Counter(_reason_kind(r[2]) for r in rejects).most_common(5)))
    log.info("%s: %d accepted, %d rejected of %d listed in %.1f s (%.0f notes/s)", dst.uri,
             summary.accepted, summary.rejected, summary.listed, summary.seconds, summary.notes_per_second)
    return summary


def _reason_kind(reason: str) -> str:
    """A reason without its file name, so that equal problems count together."""
    head, sep, tail = reason.partition(": ")
    return tail if sep and (head.startswith("audio/") or head == "examples.json") else reason


def _finish(src: Location, staging: Location, listing: Listing, reports: list[dict],
            vocab: list[str], rows_per_shard: int, split_seed: int, audio: str) -> tuple[dict, list]:
    """Reconcile the reports, renumber if needed, write rejects, manifest and _SUCCESS."""
    # A note whose metadata is not sane has no trustworthy split: "unknown". A sane
    # one is in its shard's split (a shard holds the notes of one split).
    rejects = [(s, src.display(audio_relpath(s)), r, None) for s, r in listing.rejects]
    for report in reports:
        rejects += [(s, src.display(audio_relpath(s)), r, report["split"] if sane else None)
                    for s, r, sane in zip(report["reject_note_strs"], report["reject_reasons"],
                                          report["reject_sane"])]
    final_vocab = nsynth.build_vocabulary(i for r in reports for i in r["instrument_strs"])
    shards = sorted((r for r in reports if r["num_rows"]), key=lambda r: r["path"])
    if final_vocab != vocab:
        # Every note of some instrument failed its checks: its id would leave a
        # hole, so the ids of the accepted notes are made dense again.
        log.warning("instrument(s) %s lost all their notes to the checks; renumbering instrument ids",
                    ", ".join(sorted(set(vocab) - set(final_vocab))))
        import ray.data

        ray.data.from_items([{"path": r["path"]} for r in shards]).map_batches(
            renumber_shards, batch_format="pyarrow", batch_size=1,
            fn_kwargs={"dest": staging, "vocabulary": final_vocab,
                       "compression": audio_choice(audio)[1]}).materialize()

    write_table(rejects_table([r[:3] for r in rejects]), staging, "rejects.parquet")
    clear_reports(staging)
    splits = split_counts(((r["split"], r["num_rows"]) for r in reports), (r[3] for r in rejects))
    manifest = build_manifest(
        source=src.uri, examples_sha256=listing.sha256, listed=listing.listed, splits=splits,
        instruments=final_vocab, audio=audio, rows_per_shard=rows_per_shard, shards=shards,
        split_seed=split_seed, unlisted=listing.unlisted)
    write_manifest(staging, manifest)
    return manifest, rejects


def _publish(staging: Location, dst: Location, dst_exists: bool) -> None:
    """Rename the finished staging folder to ``dst``, replacing what was there."""
    if not dst_exists:
        staging.fs.move(staging.path, dst.path)
        return
    old = dst.sibling(f".{dst.path.rsplit('/', 1)[-1]}.old-{uuid.uuid4().hex[:8]}")
    dst.fs.move(dst.path, old.path)
    dst.fs.move(staging.path, dst.path)
    old.fs.delete_dir(old.path)


def _remove(where: Location) -> None:
    try:
        if where.exists():
            where.fs.delete_dir(where.path)
    except OSError as err:  # never hide the error that brought us here
        log.warning("could not remove %s: %s", where.uri, err)
