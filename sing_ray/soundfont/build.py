"""Building an NSynth-layout dataset from a SoundFont: every input checked, the notes rendered, the files written.

:func:`build_soundfont_dataset` plans the notes, renders those not on disk yet
(here or on Ray workers, :mod:`.notes`), normalises each instrument on request
(:mod:`.normalize`), and writes ``examples.json`` and ``soundfont.json``.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import UserError
from ..grid import parse_pitches, parse_velocities
from ..nsynth_io import write_examples_json
from .fluid import DEFAULT_GAIN, HELD_FRAMES, RELEASE_FRAMES, SAMPLE_RATE, check_soundfont, resolve_sf2
from .gm import DEFAULT_PITCHES, DEFAULT_PROGRAMS, DEFAULT_VELOCITIES, INSTRUMENT_NAMES, gm_program, instrument_str
from .normalize import (NORMALIZE_PEAK_DBFS, NORMALIZE_RANGE_DBFS, normalize_instruments, previous_normalization,
                        settled_programs)
from .notes import (CHUNK_NOTES, SILENCE_DBFS, RenderedNote, is_complete, plan_notes, render_local, render_ray,
                    wav_path)

log = logging.getLogger(__name__)


@dataclass
class SoundFontBuild:
    """What :func:`build_soundfont_dataset` did."""

    out: Path
    examples_json: Path
    sf2: Path
    num_planned: int
    num_written: int = 0         # notes in examples.json
    num_rendered: int = 0        # rendered and written by this run
    num_existing: int = 0        # already complete on disk, skipped
    num_silent: int = 0          # rendered silent, left out
    num_clipped: int = 0         # reached full scale (written clipped)
    render_seconds: float = 0.0
    silent: list[str] = field(default_factory=list)
    # Per-instrument normalisation: the target (None: off), each program's gain
    # from FluidSynth's output to the files in dB, the programs whose gain the
    # peak ceiling lowered, and the notes rendered again so that every note of
    # an instrument carries the same gain.
    normalize_rms_dbfs: float | None = None
    gains_db: dict[int, float] = field(default_factory=dict)
    peak_limited: list[int] = field(default_factory=list)
    num_rerendered: int = 0

    @property
    def notes_per_second(self) -> float:
        """Notes rendered (silent ones included) per second of the render stage."""
        done = self.num_rendered + self.num_silent
        return done / self.render_seconds if self.render_seconds > 0 else 0.0


def build_soundfont_dataset(out: str | os.PathLike, sf2: str | os.PathLike | None = None,
                            programs: Sequence[int] | None = None,
                            pitches: str | Sequence[int] | None = None,
                            velocities: str | Sequence[int] | None = None,
                            num_workers: int = 0, gain: float = DEFAULT_GAIN,
                            silence_dbfs: float = SILENCE_DBFS, progress: bool = True,
                            chunk_notes: int = CHUNK_NOTES,
                            normalize_rms_dbfs: float | None = None) -> SoundFontBuild:
    """Render an NSynth-layout folder from a SoundFont.

    Writes ``<out>/audio/<note_str>.wav`` (mono 16 kHz 16-bit, 64000 frames)
    for every non-silent (program, pitch, velocity), ``<out>/examples.json``
    with NSynth's fields for every note on disk in this selection, and
    ``<out>/soundfont.json`` recording how it was made. All input is checked
    before the first note renders. Notes already complete on disk are not
    rendered again; examples.json is always complete for the selection.

    Args:
        out: the folder to write.
        sf2: the SoundFont; None for Debian's FluidR3_GM.
        programs: GM programs; None for :data:`DEFAULT_PROGRAMS`.
        pitches: MIDI pitches, or ``--pitches`` text (:mod:`sing_ray.grid`); None for
            :data:`DEFAULT_PITCHES`.
        velocities: NSynth velocities, or ``--velocities`` text; None for all five.
        num_workers: Ray actors rendering in parallel, each with its own
            synthesizer; 0 renders in this process without Ray.
        gain: FluidSynth's master gain (notes reaching full scale are counted).
        silence_dbfs: RMS under which a note is skipped as silent.
        progress: show a tqdm progress bar.
        chunk_notes: notes per unit of work sent to a worker.
        normalize_rms_dbfs: if given, each program's notes are scaled by one
            gain that puts their median RMS at this level (velocity and pitch
            differences kept; lowered where a peak would pass
            :data:`NORMALIZE_PEAK_DBFS`). Notes an earlier build scaled are
            scaled again from their recorded gain; without the flag, the
            programs an earlier build scaled are rendered again.
    Returns:
        a :class:`SoundFontBuild` with the counts.
    Raises:
        UserError: a missing or corrupt SoundFont, a program without an NSynth
            family or without a preset, an empty pitch range, a velocity that
            is not NSynth's, a negative worker count, a gain that is not positive
            or a normalisation level outside :data:`NORMALIZE_RANGE_DBFS`.
    """
    from tqdm import tqdm

    programs = tuple(DEFAULT_PROGRAMS if programs is None else programs)
    # Everything is checked here, before the first note, so that a bad flag
    # costs nothing and a good run is not cut short.
    if not programs:
        raise UserError("no program selected")
    for program in programs:
        instrument_str(program)
    # The grid's axes as sing_ray.grid checks them for every command (text or numbers).
    pitches = parse_pitches(DEFAULT_PITCHES if pitches is None else pitches)
    if not pitches:
        raise UserError("the pitch range is empty")
    velocities = parse_velocities(DEFAULT_VELOCITIES if velocities is None else velocities)
    if not velocities:
        raise UserError("no velocity selected")
    if int(num_workers) < 0:
        raise UserError(f"--workers {num_workers}: expected 0 (no Ray) or more")
    if not gain > 0:
        raise UserError(f"--gain {gain}: expected a positive number")
    if chunk_notes < 1:
        raise UserError(f"chunk_notes {chunk_notes}: expected 1 or more")
    if normalize_rms_dbfs is not None:
        lo, hi = NORMALIZE_RANGE_DBFS
        if not lo <= float(normalize_rms_dbfs) <= hi:
            raise UserError(f"--normalize-rms {normalize_rms_dbfs}: expected a median RMS "
                            f"between {lo:.0f} and {hi:.0f} dBFS")
    sf2 = resolve_sf2(sf2)
    presets = check_soundfont(sf2, programs)

    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    notes = plan_notes(sorted(set(programs)), sorted(set(pitches)), sorted(set(velocities)))
    build = SoundFontBuild(out=out, examples_json=out / "examples.json", sf2=sf2,
                           num_planned=len(notes), normalize_rms_dbfs=normalize_rms_dbfs)
    on_disk = [is_complete(wav_path(out, n.note_str)) for n in notes]
    # Every note of an instrument must carry the same gain. Programs an earlier
    # build scaled are rendered again whole where this build does not normalise
    # (FluidSynth's output, byte for byte), and so are those whose scaling was
    # cut short (their files' gains are unknown).
    previous = previous_normalization(out)
    previous_gains, pending = previous.gains, previous.pending
    redo = (set(previous_gains) | pending) if normalize_rms_dbfs is None else pending
    for i, n in enumerate(notes):
        if n.program in redo and on_disk[i]:
            on_disk[i] = False
            build.num_rerendered += 1
    # The gain each note's file carries now, from FluidSynth's output; the
    # record of programs outside this selection is kept for a later build.
    carried = {n.note_str: previous_gains[n.program] for n, done in zip(notes, on_disk)
               if done and n.program in previous_gains}
    selected = set(programs)
    elsewhere = ({p: g for p, g in previous_gains.items() if p not in selected},
                 sorted(p for p in pending if p not in selected))
    build.num_existing = sum(on_disk)
    todo = [(i, n) for i, n in enumerate(notes) if not on_disk[i]]
    log.info("SoundFont %s: %d programs x %d pitches x %d velocities = %d notes; "
             "%d already on disk, %d to render with %s",
             sf2, len(set(programs)), len(set(pitches)), len(set(velocities)), len(notes),
             build.num_existing, len(todo),
             f"{num_workers} Ray workers" if num_workers else "this process")

    bar = tqdm(total=len(todo), desc="soundfont", unit="note", disable=not progress or not todo)

    def on_chunk(results: list[RenderedNote]) -> None:
        for result in results:
            spec = notes[result.index]
            if not result.written:
                build.num_silent += 1
                build.silent.append(spec.note_str)
                continue
            if result.peak_dbfs > 0.0:
                build.num_clipped += 1
            on_disk[result.index] = True
            build.num_rendered += 1
        bar.update(len(results))

    if todo and num_workers:
        # Started (or joined) only now, after every check and only when there is
        # work; outside the timing, since a pipeline pays for it once.
        from ..runtime import init_ray

        init_ray(num_cpus=int(num_workers))
    start = time.perf_counter()
    try:
        if todo and num_workers:
            render_ray(sf2, out, gain, silence_dbfs, todo, on_chunk, int(num_workers), chunk_notes)
        elif todo:
            render_local(sf2, out, gain, silence_dbfs, todo, on_chunk, chunk_notes)
    finally:
        bar.close()
    build.render_seconds = time.perf_counter() - start

    examples = {n.note_str: n.metadata() for n, done in zip(notes, on_disk) if done}
    build.num_written = len(examples)
    if normalize_rms_dbfs is not None:
        kept = [n for n, done in zip(notes, on_disk) if done]
        # Instruments an earlier build normalised, unchanged since: their gains stand
        # and their files are not read again.
        settled, settled_limited = settled_programs(out, previous, kept, float(normalize_rms_dbfs), carried)
        rest = [n for n in kept if n.program not in settled]
        # Recorded before the files change: a pass cut short leaves them
        # marked, and the next build renders them again whole.
        build.gains_db = {p: previous_gains[p] for p in settled}
        _write_build_info(build, presets, programs, pitches, velocities, gain, silence_dbfs,
                          elsewhere, pending=sorted({n.program for n in rest}))
        gains, limited = normalize_instruments(out, rest, normalize_rms_dbfs, carried)
        build.gains_db = dict(sorted({**build.gains_db, **gains}.items()))
        build.peak_limited = sorted(set(limited) | set(settled_limited))
    write_examples_json(out, examples)
    _write_build_info(build, presets, programs, pitches, velocities, gain, silence_dbfs,
                      elsewhere)
    stray = _count_stray_wavs(out, examples)
    if stray:
        log.info("%d WAV files in %s are outside this selection and left out of examples.json",
                 stray, out / "audio")
    if build.num_silent:
        log.info("%d silent notes skipped (RMS below %.0f dBFS: outside the preset's range), "
                 "e.g. %s", build.num_silent, silence_dbfs, ", ".join(build.silent[:3]))
    if build.num_clipped:
        log.warning("%d notes reached full scale and were clipped: lower --gain (now %.2f)",
                    build.num_clipped, gain)
    if build.num_rerendered:
        log.info("%d notes rendered again so that each instrument's notes share one gain",
                 build.num_rerendered)
    if build.peak_limited:
        log.info("program(s) %s: median RMS left under %.1f dBFS so that no peak passes %.1f dBFS",
                 ", ".join(map(str, build.peak_limited)), normalize_rms_dbfs, NORMALIZE_PEAK_DBFS)
    log.info("wrote %d notes to %s (%d rendered, %d already there, %d silent) in %.1f s",
             build.num_written, out, build.num_rendered, build.num_existing, build.num_silent,
             build.render_seconds)
    return build


def _count_stray_wavs(out: Path, examples: dict) -> int:
    return sum(1 for p in (out / "audio").glob("*.wav") if p.stem not in examples)


def _write_build_info(build: SoundFontBuild, presets: dict[int, str], programs, pitches,
                      velocities, gain: float, silence_dbfs: float,
                      elsewhere: tuple[dict[int, float], list[int]],
                      pending: Sequence[int] = ()) -> None:
    # Provenance beside examples.json: what was rendered from what, and what was skipped.
    info = {
        "sf2": str(build.sf2),
        "sf2_bytes": build.sf2.stat().st_size,
        "programs": [
            {"program": p, "gm_name": gm_program(p).name, "preset": presets[p],
             "instrument_str": INSTRUMENT_NAMES[p]}
            for p in sorted(set(programs))
        ],
        "pitches": sorted(set(int(p) for p in pitches)),
        "velocities": sorted(set(int(v) for v in velocities)),
        "gain": gain,
        "silence_dbfs": silence_dbfs,
        "held_seconds": HELD_FRAMES / SAMPLE_RATE,
        "release_seconds": RELEASE_FRAMES / SAMPLE_RATE,
        "counts": {"planned": build.num_planned, "written": build.num_written,
                   "rendered": build.num_rendered, "existing": build.num_existing,
                   "silent": build.num_silent, "clipped": build.num_clipped,
                   "rerendered": build.num_rerendered},
        "silent": build.silent,
    }
    # Per-instrument normalisation: each scaled program's gain from FluidSynth's
    # output (at "gain") to its files; "pending" while a pass is under way.
    gains = {**elsewhere[0], **build.gains_db}
    if gains or pending or elsewhere[1]:
        info["normalization"] = {
            "target_rms_dbfs": build.normalize_rms_dbfs,
            "peak_ceiling_dbfs": NORMALIZE_PEAK_DBFS,
            "gains_db": {str(p): gains[p] for p in sorted(gains)},
            "peak_limited": build.peak_limited,
            "pending": sorted(set(pending) | set(elsewhere[1])),
        }
    path = build.out / "soundfont.json"
    tmp = path.with_name(f".soundfont.json.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, path)
