"""An NSynth-layout dataset rendered from a General MIDI SoundFont with FluidSynth.

NSynth itself was made this way: commercial sample libraries played note by
note, each note held for 3 s, released, and left to decay for 1 s, at 16 kHz
and velocities 25, 50, 75, 100, 127. A SoundFont is such a sample library, so
rendering one gives real recorded instruments without the 30 GB download.

The package is importable without Ray or FluidSynth: FluidSynth is loaded when
a :class:`NoteRenderer` is built, Ray only when rendering with workers.

Example::

    build = build_soundfont_dataset("data/fluidr3")          # defaults: FluidR3_GM, 14 programs
    build.examples_json                                       # data/fluidr3/examples.json

The package, along its seams:

- :mod:`.gm`: the General MIDI table, each program's NSynth family, source and name;
- :mod:`.fluid`: the FluidSynth binding, one synthesizer rendering single notes;
- :mod:`.notes`: the notes' names and files, rendered here or on Ray actors;
- :mod:`.normalize`: per-instrument loudness normalisation;
- :mod:`.build`: :func:`build_soundfont_dataset`, the whole build.

``--pitches`` and ``--velocities`` are parsed by :mod:`sing_ray.grid`, the grammar
``sing-ray render`` shares. The names below are the package's public interface
(the CLI, the quick start and the tests import them from here).
"""
from __future__ import annotations

from ..grid import parse_pitches, parse_velocities
from .build import SoundFontBuild, build_soundfont_dataset
from .fluid import (DEFAULT_GAIN, DEFAULT_SF2, HELD_FRAMES, NUM_FRAMES, RELEASE_FRAMES, SAMPLE_RATE, SF2_PACKAGE,
                    NoteRenderer, check_soundfont, resolve_sf2)
from .gm import (DEFAULT_PITCHES, DEFAULT_PROGRAMS, DEFAULT_VELOCITIES, GM_PROGRAMS, INSTRUMENT_NAMES, MAPPED_PROGRAMS,
                 GMProgram, gm_program, instrument_str, parse_programs)
from .normalize import NORMALIZE_PEAK_DBFS, NORMALIZE_RANGE_DBFS, normalize_instruments
from .notes import (CHUNK_NOTES, SILENCE_DBFS, NoteSpec, RenderedNote, is_complete, level_dbfs, plan_notes,
                    render_notes, to_pcm16, wav_path)

__all__ = [
    "CHUNK_NOTES", "DEFAULT_GAIN", "DEFAULT_PITCHES", "DEFAULT_PROGRAMS", "DEFAULT_SF2", "DEFAULT_VELOCITIES",
    "GMProgram", "GM_PROGRAMS", "HELD_FRAMES", "INSTRUMENT_NAMES", "MAPPED_PROGRAMS", "NORMALIZE_PEAK_DBFS",
    "NORMALIZE_RANGE_DBFS", "NUM_FRAMES", "NoteRenderer", "NoteSpec", "RELEASE_FRAMES", "RenderedNote",
    "SAMPLE_RATE", "SF2_PACKAGE", "SILENCE_DBFS", "SoundFontBuild", "build_soundfont_dataset", "check_soundfont",
    "gm_program", "instrument_str", "is_complete", "level_dbfs", "normalize_instruments", "parse_pitches",
    "parse_programs", "parse_velocities", "plan_notes", "render_notes", "resolve_sf2", "to_pcm16", "wav_path",
]
