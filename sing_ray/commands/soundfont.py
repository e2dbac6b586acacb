"""``sing-ray data soundfont``: render an NSynth-layout dataset from a SoundFont."""
from __future__ import annotations

import argparse
import os

from .. import console, soundfont
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
    parser.add_argument("--sf2", default=None, metavar="PATH",
                        help=f"SoundFont 2 file (default: {soundfont.DEFAULT_SF2}, from Debian's "
                             f"{soundfont.SF2_PACKAGE})")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    parser.add_argument("--programs", default="default", metavar="LIST",
                        help=f"GM programs (0-127): numbers and ranges like 0,24-31, 'default' "
                             f"({default_programs}: all 11 NSynth families) or 'all' (every "
                             f"program with an NSynth family)")
    parser.add_argument("--pitches", default=f"{pitches[0]}:{pitches[-1]}:{pitches[1] - pitches[0]}",
                        metavar=PITCHES_METAVAR, help=PITCHES_HELP)
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


def run(args: argparse.Namespace) -> int:
    """Check the flags, render, and print where the dataset went."""
    console.set_progress(not args.no_progress)   # bars only on a terminal
    programs = soundfont.parse_programs(args.programs)
    pitches = soundfont.parse_pitches(args.pitches)
    velocities = soundfont.parse_velocities(args.velocities)
    # The library checks every input before it starts (or joins) Ray, and
    # starts it only when some note is left to render: a re-run over a
    # finished folder takes a second, and bad input fails at once.
    build = soundfont.build_soundfont_dataset(
        args.out, sf2=args.sf2, programs=programs, pitches=pitches, velocities=velocities,
        num_workers=args.workers, gain=args.gain, progress=console.progress_bars(),
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
