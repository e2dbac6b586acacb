"""A corpus from many SoundFonts: one instrument per distinct melodic preset, rendered over its keys.

:func:`plan_corpus` reads every preset (:mod:`.sf2info`), sorts them into
candidates and those left out (:mod:`.catalog`), drops the duplicates
(:mod:`.dedupe`) and names the rest NSynth's way. :func:`build_corpus` renders
the plan's notes (:mod:`.pool`) into NSynth's layout (WAVs and examples.json) or
hands them to a Parquet writer in this process (``make_writer``: the interface
of :class:`sing_ray.data.direct.ParquetNoteWriter`), so the WAVs never exist.
Both resume: a rerun renders only the notes not written yet, and silent notes,
journalled in ``<out>/silent.txt``, are not tried again. ``<out>/corpus.json``
records every instrument and every preset left out (:mod:`.corpus_report`).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .. import nsynth
from ..errors import UserError
from ..grid import parse_pitches, parse_velocities
from ..nsynth_io import write_examples_json
from .catalog import NSYNTH_PITCHES, Candidate, Excluded, assign_names, classify
from .corpus_report import corpus_record, previous_instruments, write_corpus_json
from .dedupe import CACHE_NAME, Dedupe, dedupe
from .fingerprint import TOLERANCE_DB
from .fluid import DEFAULT_GAIN, resolve_sf2
from .notes import CHUNK_NOTES, SILENCE_DBFS, is_complete, wav_path
from .pool import make_chunks, run_chunks
from .sf2info import read_soundfont

log = logging.getLogger(__name__)

SILENT_JOURNAL = "silent.txt"


@dataclass
class CorpusPlan:
    """The instruments of a corpus and everything left out, before any note is rendered."""

    soundfonts: list[Path]
    presets: int
    candidates: list[Candidate]
    excluded: list[Excluded]
    dedupe: Dedupe
    names: list[str]                  # NSynth names of dedupe.kept, in the same order
    velocities: tuple[int, ...]

    @property
    def instruments(self) -> list[tuple[str, Candidate]]:
        return list(zip(self.names, self.dedupe.kept))

    @property
    def num_notes(self) -> int:
        return sum(len(c.pitches) for c in self.dedupe.kept) * len(self.velocities)

    def notes(self) -> list[tuple[int, Candidate, int, int, str]]:
        """Every note: (instrument id, preset, pitch, velocity, note_str), instrument by instrument."""
        return [(i, c, p, v, nsynth.format_note_str(name, p, v))
                for i, (name, c) in enumerate(self.instruments) for p in c.pitches for v in self.velocities]


@dataclass
class CorpusBuild:
    """What :func:`build_corpus` did; ``planned == written + silent + rejected``."""

    plan: CorpusPlan
    out: Path
    parquet: str | None = None
    planned: int = 0
    written: int = 0                  # notes in the output: this run's and earlier runs'
    rendered: int = 0                 # written by this run
    existing: int = 0                 # written by an earlier run, skipped
    silent: int = 0                   # silent (this run's or journalled by an earlier one)
    rejected: int = 0                 # refused by the checks (their reasons in corpus.json)
    clipped: int = 0
    rejects: dict[str, str] = field(default_factory=dict)
    render_seconds: float = 0.0
    total_seconds: float = 0.0
    manifest: dict | None = None

    @property
    def notes_per_second(self) -> float:
        """Notes rendered (silent and rejected ones included) per second of the render stage."""
        done = self.rendered + self.rejected + self.new_silent
        return done / self.render_seconds if self.render_seconds > 0 else 0.0

    new_silent: int = 0               # found silent by this run


def plan_corpus(sf2s: Sequence[str | os.PathLike], out: str | os.PathLike | None = None,
                pitches: str | Sequence[int] | None = None, velocities: str | Sequence[int] | None = None,
                programs: Sequence[int] | None = None, tolerance_db: float | None = TOLERANCE_DB,
                num_workers: int = 0, gain: float = DEFAULT_GAIN, progress: bool = True) -> CorpusPlan:
    """Read, sort, de-duplicate and name: the corpus's instruments, without rendering their notes.

    Args:
        sf2s: SoundFont files (each real file counts once).
        out: the build folder, where the fingerprint cache is kept (None: no cache).
        pitches: pitches asked for (None: NSynth's 21-108); each preset keeps those it plays.
        velocities: NSynth velocities (None: all five).
        programs: GM programs to keep (None: all with an NSynth family).
        tolerance_db: de-duplication tolerance; None keeps every candidate.
        num_workers: Ray actors rendering the reference notes; 0 renders here.
        gain: FluidSynth's master gain.
        progress: progress bars.
    Raises:
        UserError: no SoundFont, a missing or corrupt one, a bad pitch or velocity.
    """
    pitches = parse_pitches(NSYNTH_PITCHES if pitches is None else pitches)
    velocities = parse_velocities(nsynth.VELOCITIES if velocities is None else velocities)
    if not pitches or not velocities:
        raise UserError("the corpus needs at least one pitch and one velocity")
    if tolerance_db is not None and not tolerance_db >= 0:
        raise UserError(f"--dedupe-db {tolerance_db}: expected 0 dB or more")
    files, seen = [], set()
    for sf2 in sf2s:
        path = resolve_sf2(sf2)
        key = (str(path), path.stat().st_size)
        if key not in seen:
            seen.add(key)
            files.append(path)
    if not files:
        raise UserError("no SoundFont to build a corpus from: pass --sf2 PATH (repeatable) or --all-installed "
                        "(scripts/install_soundfonts.sh installs Debian's)")
    infos = [read_soundfont(f) for f in files]
    candidates, excluded = classify(infos, pitches, programs)
    if tolerance_db is None:
        result = Dedupe(kept=list(candidates), tolerance_db=float("nan"))
    else:
        cache = None
        if out is not None:
            Path(out).mkdir(parents=True, exist_ok=True)
            cache = Path(out) / CACHE_NAME
        result = dedupe(candidates, tolerance_db, num_workers, gain, cache, progress=progress)
    return CorpusPlan(soundfonts=sorted(files, key=lambda p: (p.name, str(p))),
                      presets=sum(len(i.presets) for i in infos), candidates=candidates, excluded=excluded,
                      dedupe=result, names=assign_names(result.kept), velocities=tuple(velocities))


def _read_journal(path: Path) -> set[str]:
    return set(path.read_text().split()) if path.is_file() else set()


def build_corpus(plan: CorpusPlan, out: str | os.PathLike,
                 make_writer: Callable[[list[str]], object] | None = None, parquet: str | None = None,
                 num_workers: int = 0, gain: float = DEFAULT_GAIN, silence_dbfs: float = SILENCE_DBFS,
                 chunk_notes: int = CHUNK_NOTES, progress: bool = True) -> CorpusBuild:
    """Render a planned corpus: WAVs and examples.json in ``out``, or Parquet through ``make_writer``.

    Args:
        plan: from :func:`plan_corpus`.
        out: the build folder: corpus.json, the fingerprint cache and the silent notes'
            journal; in the WAV mode also audio/ and examples.json.
        make_writer: None for the WAV mode; else called with the instrument names and
            returning a writer with ``done()``, ``add(meta, pcm)``, ``reject(note_str,
            reason)`` and ``close()`` (:class:`sing_ray.data.direct.ParquetNoteWriter`).
        parquet: where that writer writes (for the record).
        num_workers: Ray actors rendering in parallel; 0 renders here.
        gain: FluidSynth's master gain.
        silence_dbfs: RMS under which a note is silent and left out.
        chunk_notes: notes per unit of work.
        progress: a progress bar.
    Raises:
        UserError: the folder holds a corpus whose instrument names now stand for other
            presets (Parquet mode: those notes cannot be replaced).
    """
    from tqdm import tqdm

    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    build = CorpusBuild(plan=plan, out=out, parquet=parquet)
    notes = plan.notes()
    build.planned = len(notes)
    names = list(plan.names)
    # A name that stood for another preset in an earlier build of this folder: its notes are stale.
    before = previous_instruments(out)
    now = {name: corpus_record(c)["identity"] for name, c in plan.instruments}
    stale = {n for n, ident in before.items() if n in now and now[n] != ident}
    journal_path = out / SILENT_JOURNAL
    journal = {s for s in _read_journal(journal_path) if s.split("-", 1)[0] not in stale}
    write_corpus_json(out, plan, build)        # the names are on record before any note is written
    writer = None
    if make_writer is None:
        (out / "audio").mkdir(exist_ok=True)
        present = {e.name[:-4] for e in os.scandir(out / "audio") if e.name.endswith(".wav")}
        done = {s for _, _, _, _, s in notes
                if s in present and s.split("-", 1)[0] not in stale and is_complete(wav_path(out, s))}
    else:
        writer = make_writer(names)
        done = set(writer.done())
        if stale and any(s.split("-", 1)[0] in stale for s in done):
            raise UserError(f"{parquet}: holds notes of {len(stale)} instrument name(s) that now stand for "
                            f"other presets (e.g. {sorted(stale)[0]}): write to a new folder or overwrite it")
    build.existing = sum(1 for *_, s in notes if s in done)
    build.silent = sum(1 for *_, s in notes if s in journal and s not in done)
    todo = [(k, n) for k, n in enumerate(notes) if n[4] not in done and n[4] not in journal]
    log.info("corpus: %d instruments, %d notes planned; %d written before, %d silent before, %d to render with %s",
             len(names), build.planned, build.existing, build.silent, len(todo),
             f"{num_workers} Ray workers" if num_workers else "this process")
    bar = tqdm(total=len(todo), desc="corpus", unit="note", disable=not progress or not todo)
    written: set[str] = set(done) if make_writer is None else set()
    journal_file = open(journal_path, "a")

    def on_result(chunk, results) -> None:
        for index, payload, rms, peak in results:
            inst, c, pitch, velocity, note_str = notes[index]
            if payload is None or payload is False:
                build.new_silent += 1
                journal_file.write(note_str + "\n")
                continue
            meta = nsynth.example_metadata(names[inst], pitch, velocity, note=(inst * 128 + pitch) * 128 + velocity,
                                           instrument=inst)
            reason = nsynth.validate_metadata(note_str, meta)
            if reason is not None:
                build.rejected += 1
                build.rejects[note_str] = reason
                if writer is not None:
                    writer.reject(note_str, reason)
                continue
            if peak > 0.0:
                build.clipped += 1
            build.rendered += 1
            if writer is None:
                written.add(note_str)
            else:
                writer.add(meta, payload)
        journal_file.flush()
        bar.update(len(results))

    by_sf2: dict[str, list[tuple]] = {}
    for k, (_, c, pitch, velocity, note_str) in todo:
        by_sf2.setdefault(str(c.sf2), []).append((k, c.bank, c.program, pitch, velocity, note_str))
    chunks = make_chunks("wav" if writer is None else "pcm", by_sf2, chunk_notes)
    render_start = time.perf_counter()
    try:
        run_chunks(chunks, on_result, num_workers=int(num_workers), out=str(out), gain=gain,
                   silence_dbfs=silence_dbfs)
    finally:
        bar.close()
        journal_file.close()
    build.render_seconds = time.perf_counter() - render_start
    build.silent += build.new_silent
    if writer is None:
        examples = {s: nsynth.example_metadata(names[i], p, v, note=(i * 128 + p) * 128 + v, instrument=i)
                    for i, _, p, v, s in notes if s in written}
        write_examples_json(out, examples)
        build.written = len(examples)
    else:
        build.manifest = writer.close()
        build.written = build.existing + build.rendered
    build.total_seconds = time.perf_counter() - start
    write_corpus_json(out, plan, build)
    log.info("corpus: %d notes written (%d this run, %d before), %d silent, %d rejected in %.1f s",
             build.written, build.rendered, build.existing, build.silent, build.rejected, build.total_seconds)
    return build
