"""``sing-ray data soundfont``: render an NSynth-layout dataset from a SoundFont, or a corpus from many."""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from .. import console, soundfont
from ..errors import UserError
from ..grid import PITCHES_HELP, PITCHES_METAVAR, VELOCITIES_HELP, VELOCITIES_METAVAR


def _default_workers() -> int:
    # One Ray worker per core, capped: rendering is cheap next to starting workers.
    return max(1, min(os.cpu_count() or 1, 8))


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's arguments."""
    default_programs = ",".join(map(str, soundfont.DEFAULT_PROGRAMS))
    pitches = soundfont.DEFAULT_PITCHES
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.description = (
        "Render one note per (GM program, pitch, velocity) with FluidSynth at 16 kHz, as NSynth "
        "was made: note-on held 3 s, note-off, 1 s of release. Writes OUT/examples.json with "
        "NSynth's fields, OUT/audio/<note_str>.wav (mono, 16-bit, 64000 frames) and "
        "OUT/soundfont.json. Notes already complete in OUT are not rendered again; silent notes "
        "(outside a preset's range) are skipped and counted. The GM -> NSynth family table is in "
        "docs/soundfont.md.")
    parser.add_argument("--sf2", default=None, metavar="PATH", action="append",
                        help=f"SoundFont 2 or 3 file (default: {soundfont.DEFAULT_SF2}, from Debian's "
                             f"{soundfont.SF2_PACKAGE}); with --corpus, repeat it for each SoundFont")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    parser.add_argument("--programs", default=None, metavar="LIST",
                        help=f"GM programs (0-127): numbers and ranges like 0,24-31, 'default' "
                             f"({default_programs}: all 11 NSynth families) or 'all' (every "
                             f"program with an NSynth family). Default: 'default'; with --corpus, "
                             f"'all' (the presets of every bank whose program is listed)")
    parser.add_argument("--pitches", default=None, metavar=PITCHES_METAVAR,
                        help=f"{PITCHES_HELP}. Default: {pitches[0]}:{pitches[-1]}:{pitches[1] - pitches[0]}; "
                             f"with --corpus, 21:108 (NSynth's), each preset keeping the keys it plays")
    parser.add_argument("--velocities", default=",".join(map(str, soundfont.DEFAULT_VELOCITIES)),
                        metavar=VELOCITIES_METAVAR, help=VELOCITIES_HELP)
    parser.add_argument("--workers", type=int, default=_default_workers(), metavar="N",
                        help="Ray workers rendering in parallel, each with its own synthesizer; "
                             "0 renders in this process without Ray")
    parser.add_argument("--gain", type=float, default=soundfont.DEFAULT_GAIN,
                        help="FluidSynth master gain (lower it if notes are reported clipped)")
    parser.add_argument("--normalize-rms", type=float, default=None, metavar="DBFS",
                        help="scale each instrument's notes by one gain so that their median "
                             "RMS is DBFS (e.g. -20), keeping its velocity and pitch differences; "
                             "lowered where a peak would pass "
                             f"{soundfont.NORMALIZE_PEAK_DBFS:.0f} dBFS. Default: FluidSynth's "
                             "levels, one gain for all")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    corpus = parser.add_argument_group(
        "corpus", "one instrument per distinct melodic (SoundFont, bank, program) preset of many SoundFonts, "
                  "named and labelled NSynth's way, each rendered over its keys (docs/soundfont.md, "
                  "'A corpus from every installed SoundFont'); OUT/corpus.json records every instrument and "
                  "every preset left out, with the reason")
    corpus.add_argument("--corpus", action="store_true",
                        help="build a corpus from every --sf2 given (or --all-installed) instead of one "
                             "SoundFont's GM programs")
    corpus.add_argument("--all-installed", action="store_true",
                        help="with --corpus: every .sf2 and .sf3 under "
                             f"{', '.join(map(str, soundfont.SEARCH_DIRS))} (links resolved, each file once); "
                             "scripts/install_soundfonts.sh installs Debian's")
    corpus.add_argument("--plan-only", "--dry-run", action="store_true", dest="plan_only",
                        help="with --corpus: print the instruments and notes per SoundFont and per family "
                             "beside NSynth's, and the presets left out per reason, without rendering notes "
                             "(the de-duplication's reference notes are rendered, and cached in OUT)")
    corpus.add_argument("--dedupe-db", type=float, default=soundfont.TOLERANCE_DB, metavar="DB",
                        help="with --corpus: a preset whose three reference notes (C3, C4, C5 at velocity 100), "
                             "levels matched, lie within DB of an earlier instrument's (mean absolute "
                             "difference of the long-term mel spectrum and of the 100 ms envelope, in dB) is "
                             "dropped as its duplicate")
    corpus.add_argument("--no-dedupe", action="store_true",
                        help="with --corpus: keep every melodic preset, however alike (no reference notes)")
    corpus.add_argument("--parquet", default=None, metavar="DATASET",
                        help="with --corpus: write the notes straight into an ingested Parquet dataset at "
                             "DATASET (what `sing-ray data ingest` makes) instead of WAVs; OUT keeps "
                             "corpus.json and the caches")
    corpus.add_argument("--parquet-audio", default="flac", choices=("flac", "zstd", "pcm"),
                        help="with --parquet: how the audio column is stored (FLAC, 16-bit PCM in a "
                             "zstd-compressed column, or raw PCM)")
    corpus.add_argument("--overwrite", action="store_true",
                        help="with --parquet: start DATASET afresh rather than resume it")


_CORPUS_ONLY = ("all_installed", "plan_only", "no_dedupe", "parquet", "overwrite")


def run(args: argparse.Namespace) -> int:
    """Check the flags, render, and print where the dataset went."""
    console.set_progress(not args.no_progress)   # bars only on a terminal
    if args.corpus:
        return _run_corpus(args)
    given = [f"--{name.replace('_', '-')}" for name in _CORPUS_ONLY if getattr(args, name)]
    if given:
        raise UserError(f"{', '.join(given)}: only with --corpus")
    if args.sf2 and len(args.sf2) > 1:
        raise UserError(f"--sf2 given {len(args.sf2)} times: one SoundFont without --corpus, "
                        "or add --corpus to build from them all")
    programs = soundfont.parse_programs(args.programs or "default")
    pitches = soundfont.parse_pitches(args.pitches or _default_pitches())
    velocities = soundfont.parse_velocities(args.velocities)
    # The library checks every input before it starts (or joins) Ray, and
    # starts it only when some note is left to render: a re-run over a
    # finished folder takes a second, and bad input fails at once.
    build = soundfont.build_soundfont_dataset(
        args.out, sf2=args.sf2[0] if args.sf2 else None, programs=programs, pitches=pitches,
        velocities=velocities, num_workers=args.workers, gain=args.gain, progress=console.progress_bars(),
        normalize_rms_dbfs=args.normalize_rms)
    print(f"wrote {build.num_written} notes to {build.out}: {build.examples_json} and "
          f"{build.out / 'audio'}/ ({build.num_rendered} rendered, {build.num_existing} already "
          f"there, {build.num_silent} silent skipped, {build.num_clipped} clipped)")
    if build.gains_db:
        gains = ", ".join(f"{p}: {g:+.1f}" for p, g in sorted(build.gains_db.items()))
        limited = (f"; peak-limited: {', '.join(map(str, build.peak_limited))}"
                   if build.peak_limited else "")
        print(f"normalised each instrument to a median RMS of {build.normalize_rms_dbfs:g} dBFS, "
              f"gain in dB per program: {gains}{limited}")
    if build.num_rendered + build.num_silent:
        print(f"rendered {build.num_rendered + build.num_silent} notes in "
              f"{build.render_seconds:.1f} s: {build.notes_per_second:.0f} notes/s "
              f"with {args.workers or 'no'} worker(s)")
    return 0


def _default_pitches() -> str:
    pitches = soundfont.DEFAULT_PITCHES
    return f"{pitches[0]}:{pitches[-1]}:{pitches[1] - pitches[0]}"


def _run_corpus(args: argparse.Namespace) -> int:
    """``--corpus``: plan (read, sort out, de-duplicate, name), print the plan or render it."""
    if args.normalize_rms is not None:
        raise UserError("--normalize-rms: not with --corpus (its notes keep FluidSynth's levels)")
    if not args.parquet and (args.overwrite or args.parquet_audio != "flac"):
        raise UserError("--overwrite and --parquet-audio: only with --parquet")
    sf2s = list(args.sf2 or [])
    if args.all_installed:
        sf2s += soundfont.installed_soundfonts()
    if not sf2s:
        raise UserError("--corpus: no SoundFont given: pass --sf2 PATH (repeatable) or --all-installed "
                        "(scripts/install_soundfonts.sh installs Debian's)")
    programs = soundfont.parse_programs(args.programs) if args.programs else None
    progress = console.progress_bars()
    start = time.perf_counter()
    plan = soundfont.plan_corpus(sf2s, out=args.out, pitches=args.pitches, velocities=args.velocities,
                                 programs=programs, tolerance_db=None if args.no_dedupe else args.dedupe_db,
                                 num_workers=0 if args.plan_only else args.workers, gain=args.gain,
                                 progress=progress)
    print(soundfont.format_plan(plan))
    print(f"de-duplication: {len(plan.candidates)} melodic presets, {plan.dedupe.num_rendered} rendered at "
          f"their reference notes, in {plan.dedupe.seconds:.1f} s")
    if args.plan_only:
        path = soundfont.write_corpus_json(Path(args.out), plan)
        print(f"planned only: nothing rendered; the plan is in {path}")
        return 0
    make_writer = None
    if args.parquet:
        from ..data.direct import ParquetNoteWriter

        source = "SoundFonts: " + ", ".join(p.name for p in plan.soundfonts)

        def make_writer(instruments):
            return ParquetNoteWriter(args.parquet, instruments, audio=args.parquet_audio, source=source,
                                     overwrite=args.overwrite)
    build = soundfont.build_corpus(plan, args.out, make_writer=make_writer, parquet=args.parquet,
                                   num_workers=args.workers, gain=args.gain, progress=progress)
    where = args.parquet or f"{build.out}/examples.json and {build.out / 'audio'}/"
    print(f"corpus: {build.written} notes of {len(plan.names)} instruments in {where} ({build.rendered} "
          f"rendered, {build.existing} already there, {build.silent} silent, {build.rejected} rejected, "
          f"{build.clipped} clipped; {build.planned} planned)")
    if build.rendered + build.new_silent + build.rejected:
        print(f"rendered {build.rendered + build.new_silent + build.rejected} notes in {build.render_seconds:.1f} s: "
              f"{build.notes_per_second:.1f} notes/s with {args.workers or 'no'} worker(s)")
    print(f"build time {time.perf_counter() - start:.1f} s; the record is {build.out / 'corpus.json'}")
    return 0
