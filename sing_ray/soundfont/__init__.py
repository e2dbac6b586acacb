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

A corpus from many SoundFonts (``sing-ray data soundfont --corpus``):

- :mod:`.sf2info`: every preset of a SoundFont 2 or 3 file and its keys, read from its hydra;
- :mod:`.catalog`: the installed SoundFonts, presets sorted into instruments and those left out, names;
- :mod:`.fingerprint`: a preset's reference notes in a few numbers, and the distance between two;
- :mod:`.pool`: rendering chunks over many SoundFonts, here or on Ray actors;
- :mod:`.dedupe`: the presets that sound like an earlier one dropped;
- :mod:`.corpus`, :mod:`.corpus_report`: :func:`plan_corpus`, :func:`build_corpus` and corpus.json.

``--pitches`` and ``--velocities`` are parsed by :mod:`sing_ray.grid`, the grammar
``sing-ray render`` shares. The names below are the package's public interface
(the CLI, the quick start and the tests import them from here).
"""
from __future__ import annotations

from ..grid import parse_pitches, parse_velocities
from .build import SoundFontBuild, build_soundfont_dataset
from .catalog import SEARCH_DIRS, Candidate, Excluded, assign_names, classify, installed_soundfonts
from .corpus import CorpusBuild, CorpusPlan, build_corpus, plan_corpus
from .corpus_report import format_plan, write_corpus_json
from .dedupe import Dedupe, dedupe
from .fingerprint import TOLERANCE_DB
from .sf2info import Preset, SoundFontInfo, read_soundfont
from .fluid import (DEFAULT_GAIN, DEFAULT_SF2, HELD_FRAMES, NUM_FRAMES, RELEASE_FRAMES, SAMPLE_RATE, SF2_PACKAGE,
                    NoteRenderer, check_soundfont, resolve_sf2)
from .gm import (DEFAULT_PITCHES, DEFAULT_PROGRAMS, DEFAULT_VELOCITIES, GM_PROGRAMS, INSTRUMENT_NAMES, MAPPED_PROGRAMS,
                 GMProgram, gm_program, instrument_str, parse_programs)
from .normalize import NORMALIZE_PEAK_DBFS, NORMALIZE_RANGE_DBFS, normalize_instruments
from .notes import (CHUNK_NOTES, SILENCE_DBFS, NoteSpec, RenderedNote, is_complete, level_dbfs, plan_notes,
                    render_notes, to_pcm16, wav_path)

__all__ = [
    "Candidate", "CorpusBuild", "CorpusPlan", "Dedupe", "Excluded", "Preset", "SEARCH_DIRS", "SoundFontInfo",
    "TOLERANCE_DB", "assign_names", "build_corpus", "classify", "dedupe", "format_plan", "installed_soundfonts",
    "plan_corpus", "read_soundfont", "write_corpus_json",
    "CHUNK_NOTES", "DEFAULT_GAIN", "DEFAULT_PITCHES", "DEFAULT_PROGRAMS", "DEFAULT_SF2", "DEFAULT_VELOCITIES",
    "GMProgram", "GM_PROGRAMS", "HELD_FRAMES", "INSTRUMENT_NAMES", "MAPPED_PROGRAMS", "NORMALIZE_PEAK_DBFS",
    "NORMALIZE_RANGE_DBFS", "NUM_FRAMES", "NoteRenderer", "NoteSpec", "RELEASE_FRAMES", "RenderedNote",
    "SAMPLE_RATE", "SF2_PACKAGE", "SILENCE_DBFS", "SoundFontBuild", "build_soundfont_dataset", "check_soundfont",
    "gm_program", "instrument_str", "is_complete", "level_dbfs", "normalize_instruments", "parse_pitches",
    "parse_programs", "parse_velocities", "plan_notes", "render_notes", "resolve_sf2", "to_pcm16", "wav_path",
]
