"""An NSynth-layout dataset rendered from a General MIDI SoundFont with FluidSynth.

NSynth itself was made this way: commercial sample libraries played note by
note, each note held for 3 s, released, and left to decay for 1 s, at 16 kHz
and velocities 25, 50, 75, 100, 127. A SoundFont is such a sample library, so
rendering one gives real recorded instruments without the 30 GB download.

The module is importable without Ray or FluidSynth: FluidSynth is loaded when
a :class:`NoteRenderer` is built, Ray only when rendering with workers.

Example::

    build = build_soundfont_dataset("data/fluidr3")          # defaults: FluidR3_GM, 14 programs
    build.examples_json                                       # data/fluidr3/examples.json
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import math
import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from . import nsynth
from .errors import UserError
from .nsynth_io import write_examples_json, write_note_wav

log = logging.getLogger(__name__)

SAMPLE_RATE = nsynth.SAMPLE_RATE
NUM_FRAMES = nsynth.NUM_FRAMES
HELD_FRAMES = 3 * SAMPLE_RATE                 # note-on for 3 s, as NSynth
RELEASE_FRAMES = NUM_FRAMES - HELD_FRAMES     # then note-off and 1 s of release

DEFAULT_SF2 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SF2_PACKAGE = "fluid-soundfont-gm"

# FluidSynth's output is float; its synth.gain scales every voice. With one
# voice at a time, gain 1.0 put the loudest FluidR3_GM note (Overdriven Guitar,
# velocity 127, every second pitch of all 128 programs measured) at 0.975 of full
# scale; 0.9 leaves about 1 dB of headroom. One gain for every note keeps the
# loudness differences between velocities, which the model has to learn.
DEFAULT_GAIN = 0.9

# A note whose RMS over the 4 s lies below this is silence: the key lies
# outside every zone of the preset (FluidR3's Contrabass from C4 up renders
# exact zeros), or what sounds is below one 16-bit step (-90 dBFS) and would
# quantize to near-silence anyway. Audible FluidR3 notes at velocity 25 sit
# around -60 dBFS; only a few extreme pitches of Xylophone and Vibraphone
# fall below the floor.
SILENCE_DBFS = -90.0

# FluidSynth renders in blocks of 64 frames; a note-on takes effect at the next one.
_BLOCK = 64
# A freed voice keeps the pan gain it last had, and FluidSynth ramps a reused
# voice from that value over its first block (a click guard added in 2.2). So
# without care the first 4 ms of a note depend on which note used that voice
# before. Playing the same note for this many frames and killing it first leaves
# every voice the note will reuse in the same state, whatever ran before; 64
# frames was not enough for drawbar organs, 256 gave bit-identical notes over
# 800 random orders of all 128 programs (tests/test_soundfont.py checks a few).
_PRIME_FRAMES = 4 * _BLOCK

# Per-instrument loudness normalisation (``normalize_rms_dbfs``): one gain per
# program puts the median RMS of its notes at the target, so the differences
# between its velocities and pitches stay as the SoundFont made them; where
# that gain would take a note's peak over this ceiling, the gain is lowered.
NORMALIZE_PEAK_DBFS = -1.0
NORMALIZE_RANGE_DBFS = (-60.0, -3.0)

# Notes per unit of work sent to a Ray worker: small enough for a smooth
# progress bar, large enough that scheduling costs little next to rendering.
CHUNK_NOTES = 16


@dataclass(frozen=True)
class GMProgram:
    """One General MIDI program and the NSynth (family, source) it renders as.

    ``family`` and ``source`` are None where NSynth has no family for the
    sound; ``note`` then says why, and otherwise explains a mapping that is
    not obvious from the name.
    """

    program: int
    name: str
    family: str | None
    source: str | None
    note: str = ""


def _gm(program, name, family=None, source=None, note=""):
    return GMProgram(program, name, family, source, note)


_PAD = "synth pad: NSynth has no pad family (synth_lead is for lead lines)"
_FX = "sound effect: no pitched instrument family"
_DRUM = "percussion: NSynth has no drum family"

# General MIDI Level 1 programs (0-based) -> NSynth family and source.
# NSynth's sources: acoustic = a recorded acoustic instrument, electronic = a
# recorded electric or electronic instrument, synthetic = synthesized.
GM_PROGRAMS: tuple[GMProgram, ...] = (
    # Piano
    _gm(0, "Acoustic Grand Piano", "keyboard", "acoustic"),
    _gm(1, "Bright Acoustic Piano", "keyboard", "acoustic"),
    _gm(2, "Electric Grand Piano", "keyboard", "electronic", "strings with pickups (CP-70)"),
    _gm(3, "Honky-tonk Piano", "keyboard", "acoustic"),
    _gm(4, "Electric Piano 1", "keyboard", "electronic", "tine electric piano (Rhodes)"),
    _gm(5, "Electric Piano 2", "keyboard", "synthetic", "FM electric piano (DX7)"),
    _gm(6, "Harpsichord", "keyboard", "acoustic"),
    _gm(7, "Clavi", "keyboard", "electronic", "Clavinet: strings with pickups"),
    # Chromatic percussion
    _gm(8, "Celesta", "keyboard", "acoustic", "struck plates played from a keyboard"),
    _gm(9, "Glockenspiel", "mallet", "acoustic"),
    _gm(10, "Music Box", "mallet", "acoustic", "tuned metal tines: nearest family"),
    _gm(11, "Vibraphone", "mallet", "acoustic"),
    _gm(12, "Marimba", "mallet", "acoustic"),
    _gm(13, "Xylophone", "mallet", "acoustic"),
    _gm(14, "Tubular Bells", "mallet", "acoustic"),
    _gm(15, "Dulcimer", "mallet", "acoustic", "hammered strings"),
    # Organ
    _gm(16, "Drawbar Organ", "organ", "electronic", "tonewheel organ"),
    _gm(17, "Percussive Organ", "organ", "electronic"),
    _gm(18, "Rock Organ", "organ", "electronic"),
    _gm(19, "Church Organ", "organ", "acoustic", "pipe organ"),
    _gm(20, "Reed Organ", "organ", "acoustic", "harmonium"),
    _gm(21, "Accordion", "reed", "acoustic", "free reed"),
    _gm(22, "Harmonica", "reed", "acoustic", "free reed"),
    _gm(23, "Tango Accordion", "reed", "acoustic", "bandoneon: free reed"),
    # Guitar
    _gm(24, "Acoustic Guitar (nylon)", "guitar", "acoustic"),
    _gm(25, "Acoustic Guitar (steel)", "guitar", "acoustic"),
    _gm(26, "Electric Guitar (jazz)", "guitar", "electronic"),
    _gm(27, "Electric Guitar (clean)", "guitar", "electronic"),
    _gm(28, "Electric Guitar (muted)", "guitar", "electronic"),
    _gm(29, "Overdriven Guitar", "guitar", "electronic"),
    _gm(30, "Distortion Guitar", "guitar", "electronic"),
    _gm(31, "Guitar Harmonics", "guitar", "electronic"),
    # Bass
    _gm(32, "Acoustic Bass", "bass", "acoustic"),
    _gm(33, "Electric Bass (finger)", "bass", "electronic"),
    _gm(34, "Electric Bass (pick)", "bass", "electronic"),
    _gm(35, "Fretless Bass", "bass", "electronic"),
    _gm(36, "Slap Bass 1", "bass", "electronic"),
    _gm(37, "Slap Bass 2", "bass", "electronic"),
    _gm(38, "Synth Bass 1", "bass", "synthetic"),
    _gm(39, "Synth Bass 2", "bass", "synthetic"),
    # Strings
    _gm(40, "Violin", "string", "acoustic"),
    _gm(41, "Viola", "string", "acoustic"),
    _gm(42, "Cello", "string", "acoustic"),
    _gm(43, "Contrabass", "string", "acoustic", "bowed: GM files it under strings"),
    _gm(44, "Tremolo Strings", "string", "acoustic"),
    _gm(45, "Pizzicato Strings", "string", "acoustic"),
    _gm(46, "Orchestral Harp", "string", "acoustic"),
    _gm(47, "Timpani", note=_DRUM),
    # Ensemble
    _gm(48, "String Ensemble 1", "string", "acoustic"),
    _gm(49, "String Ensemble 2", "string", "acoustic"),
    _gm(50, "SynthStrings 1", "string", "synthetic"),
    _gm(51, "SynthStrings 2", "string", "synthetic"),
    _gm(52, "Choir Aahs", "vocal", "acoustic"),
    _gm(53, "Voice Oohs", "vocal", "acoustic"),
    _gm(54, "Synth Voice", "vocal", "synthetic"),
    _gm(55, "Orchestra Hit", note="a tutti stab of many instruments: no single family"),
    # Brass
    _gm(56, "Trumpet", "brass", "acoustic"),
    _gm(57, "Trombone", "brass", "acoustic"),
    _gm(58, "Tuba", "brass", "acoustic"),
    _gm(59, "Muted Trumpet", "brass", "acoustic"),
    _gm(60, "French Horn", "brass", "acoustic"),
    _gm(61, "Brass Section", "brass", "acoustic"),
    _gm(62, "SynthBrass 1", "brass", "synthetic"),
    _gm(63, "SynthBrass 2", "brass", "synthetic"),
    # Reed
    _gm(64, "Soprano Sax", "reed", "acoustic"),
    _gm(65, "Alto Sax", "reed", "acoustic"),
    _gm(66, "Tenor Sax", "reed", "acoustic"),
    _gm(67, "Baritone Sax", "reed", "acoustic"),
    _gm(68, "Oboe", "reed", "acoustic"),
    _gm(69, "English Horn", "reed", "acoustic"),
    _gm(70, "Bassoon", "reed", "acoustic"),
    _gm(71, "Clarinet", "reed", "acoustic"),
    # Pipe
    _gm(72, "Piccolo", "flute", "acoustic"),
    _gm(73, "Flute", "flute", "acoustic"),
    _gm(74, "Recorder", "flute", "acoustic"),
    _gm(75, "Pan Flute", "flute", "acoustic"),
    _gm(76, "Blown Bottle", "flute", "acoustic", "edge-blown like a flute"),
    _gm(77, "Shakuhachi", "flute", "acoustic"),
    _gm(78, "Whistle", "flute", "acoustic"),
    _gm(79, "Ocarina", "flute", "acoustic"),
    # Synth lead
    _gm(80, "Lead 1 (square)", "synth_lead", "synthetic"),
    _gm(81, "Lead 2 (sawtooth)", "synth_lead", "synthetic"),
    _gm(82, "Lead 3 (calliope)", "synth_lead", "synthetic"),
    _gm(83, "Lead 4 (chiff)", "synth_lead", "synthetic"),
    _gm(84, "Lead 5 (charang)", "synth_lead", "synthetic"),
    _gm(85, "Lead 6 (voice)", "synth_lead", "synthetic"),
    _gm(86, "Lead 7 (fifths)", "synth_lead", "synthetic", "sounds the pitch and its fifth"),
    _gm(87, "Lead 8 (bass + lead)", "synth_lead", "synthetic"),
    # Synth pad
    _gm(88, "Pad 1 (new age)", note=_PAD),
    _gm(89, "Pad 2 (warm)", note=_PAD),
    _gm(90, "Pad 3 (polysynth)", note=_PAD),
    _gm(91, "Pad 4 (choir)", "vocal", "synthetic", "a synthesized choir"),
    _gm(92, "Pad 5 (bowed)", note=_PAD),
    _gm(93, "Pad 6 (metallic)", note=_PAD),
    _gm(94, "Pad 7 (halo)", note=_PAD),
    _gm(95, "Pad 8 (sweep)", note=_PAD),
    # Synth effects
    _gm(96, "FX 1 (rain)", note=_FX),
    _gm(97, "FX 2 (soundtrack)", note=_FX),
    _gm(98, "FX 3 (crystal)", note=_FX),
    _gm(99, "FX 4 (atmosphere)", note=_FX),
    _gm(100, "FX 5 (brightness)", note=_FX),
    _gm(101, "FX 6 (goblins)", note=_FX),
    _gm(102, "FX 7 (echoes)", note=_FX),
    _gm(103, "FX 8 (sci-fi)", note=_FX),
    # Ethnic: fretted plucked lutes count as guitars, zithers as strings
    _gm(104, "Sitar", "guitar", "acoustic", "fretted plucked lute"),
    _gm(105, "Banjo", "guitar", "acoustic", "fretted plucked lute"),
    _gm(106, "Shamisen", "guitar", "acoustic", "plucked lute"),
    _gm(107, "Koto", "string", "acoustic", "plucked zither"),
    _gm(108, "Kalimba", "mallet", "acoustic", "tuned tines: nearest family"),
    _gm(109, "Bag pipe", "reed", "acoustic"),
    _gm(110, "Fiddle", "string", "acoustic"),
    _gm(111, "Shanai", "reed", "acoustic"),
    # Percussive
    _gm(112, "Tinkle Bell", "mallet", "acoustic", "tuned bells"),
    _gm(113, "Agogo", note=_DRUM),
    _gm(114, "Steel Drums", "mallet", "acoustic", "tuned pans played with mallets"),
    _gm(115, "Woodblock", note=_DRUM),
    _gm(116, "Taiko Drum", note=_DRUM),
    _gm(117, "Melodic Tom", note=_DRUM),
    _gm(118, "Synth Drum", note=_DRUM),
    _gm(119, "Reverse Cymbal", note=_DRUM),
    # Sound effects
    _gm(120, "Guitar Fret Noise", note=_FX),
    _gm(121, "Breath Noise", note=_FX),
    _gm(122, "Seashore", note=_FX),
    _gm(123, "Bird Tweet", note=_FX),
    _gm(124, "Telephone Ring", note=_FX),
    _gm(125, "Helicopter", note=_FX),
    _gm(126, "Applause", note=_FX),
    _gm(127, "Gunshot", note=_FX),
)

# Every NSynth family (all 11) and all three sources in 14 instruments. With
# DEFAULT_PITCHES and the five velocities: 14 x 13 x 5 = 910 notes, seconds to
# render and small enough for the quick start on 2 cores. Where a family had a
# choice, the program whose FluidR3 rendering sounds at the pitch it was played
# was taken: FluidR3's electric organs (16-18) sound one or two octaves low (their
# 16' ranks dominate), Synth Bass 1 and the Saw lead jump an octave down in the
# upper range; Reed Organ, Finger Bass and the Square lead measure within 15
# cents over the whole default range (docs/soundfont.md has the figures).
DEFAULT_PROGRAMS = (0, 4, 11, 20, 24, 27, 32, 33, 40, 52, 56, 65, 73, 80)
# C2..C6 in major thirds: the middle of every default instrument's range.
DEFAULT_PITCHES = tuple(range(36, 85, 4))
DEFAULT_VELOCITIES = nsynth.VELOCITIES


def _instrument_names() -> dict[int, str]:
    # Indices count per family_source over the whole GM table in program
    # order, so a program keeps its name whatever else is selected.
    counts: dict[str, int] = {}
    names = {}
    for gm in GM_PROGRAMS:
        if gm.family is None:
            continue
        key = f"{gm.family}_{gm.source}"
        names[gm.program] = nsynth.instrument_name(gm.family, gm.source, counts.get(key, 0))
        counts[key] = counts.get(key, 0) + 1
    return names


INSTRUMENT_NAMES: dict[int, str] = _instrument_names()
MAPPED_PROGRAMS = tuple(sorted(INSTRUMENT_NAMES))


def gm_program(program: int) -> GMProgram:
    """The GM table entry of a program number (0-127).

    Raises:
        UserError: the number is outside 0-127.
    """
    if not 0 <= int(program) <= 127:
        raise UserError(f"program {program}: General MIDI programs are 0-127")
    return GM_PROGRAMS[int(program)]


def instrument_str(program: int) -> str:
    """NSynth's instrument name for a GM program, e.g. 0 -> ``keyboard_acoustic_000``.

    Raises:
        UserError: NSynth has no family for the program (percussion, pads, effects).
    """
    gm = gm_program(program)
    if gm.family is None:
        raise UserError(f"program {gm.program} ({gm.name}) has no NSynth family: {gm.note}")
    return INSTRUMENT_NAMES[gm.program]


# ---------------------------------------------------------------- parsing


def parse_programs(text: str) -> tuple[int, ...]:
    """Programs from ``0,32,81``, ranges ``24-31``, ``default`` or ``all``.

    ``all`` means every program with an NSynth family; naming a program that
    has none is an error.

    Args:
        text: comma-separated items.
    Returns:
        sorted distinct program numbers.
    Raises:
        UserError: a malformed item, a number outside 0-127, or a program with
            no NSynth family.
    """
    programs: set[int] = set()
    for item in (part.strip() for part in str(text).split(",")):
        if not item:
            continue
        if item == "all":
            programs.update(MAPPED_PROGRAMS)
            continue
        if item == "default":
            programs.update(DEFAULT_PROGRAMS)
            continue
        lo, sep, hi = item.partition("-")
        try:
            first = int(lo)
            last = int(hi) if sep else first
        except ValueError:
            raise UserError(f"--programs item {item!r}: expected a number, a range like 24-31, "
                            f"'default' or 'all'") from None
        if first > last:
            raise UserError(f"--programs range {item!r} is empty")
        for program in range(first, last + 1):
            instrument_str(program)         # raises for out-of-range and unmapped programs
            programs.add(program)
    if not programs:
        raise UserError("--programs selects no program")
    return tuple(sorted(programs))


def parse_pitches(text: str) -> tuple[int, ...]:
    """MIDI pitches from ``LO:HI[:STEP]`` (HI included), or a single pitch.

    Args:
        text: e.g. ``36:84:4`` (C2 to C6 in major thirds) or ``21:108``.
    Returns:
        the pitches, ascending.
    Raises:
        UserError: malformed, outside 0-127, a step below 1, or an empty range.
    """
    parts = str(text).split(":")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise UserError(f"--pitches {text!r}: expected LO:HI[:STEP] with integers") from None
    if len(numbers) == 1:
        numbers = [numbers[0], numbers[0]]
    if len(numbers) not in (2, 3):
        raise UserError(f"--pitches {text!r}: expected LO:HI[:STEP]")
    lo, hi, step = numbers[0], numbers[1], numbers[2] if len(numbers) == 3 else 1
    for pitch in (lo, hi):
        if not nsynth.PITCH_RANGE[0] <= pitch <= nsynth.PITCH_RANGE[1]:
            raise UserError(f"--pitches {text!r}: pitch {pitch} is outside MIDI's 0-127")
    if step < 1:
        raise UserError(f"--pitches {text!r}: the step must be 1 or more")
    pitches = tuple(range(lo, hi + 1, step))
    if not pitches:
        raise UserError(f"--pitches {text!r} is an empty range (LO {lo} is above HI {hi})")
    return pitches


def parse_velocities(text: str) -> tuple[int, ...]:
    """Velocities from ``25,50,75,100,127``; each must be one of NSynth's.

    Raises:
        UserError: a non-integer, or a velocity NSynth does not use.
    """
    velocities = set()
    for item in (part.strip() for part in str(text).split(",")):
        if not item:
            continue
        try:
            velocity = int(item)
        except ValueError:
            raise UserError(f"--velocities item {item!r} is not an integer") from None
        if velocity not in nsynth.VELOCITIES:
            raise UserError(f"velocity {velocity} is not one of NSynth's "
                            f"{', '.join(map(str, nsynth.VELOCITIES))}")
        velocities.add(velocity)
    if not velocities:
        raise UserError("--velocities selects no velocity")
    return tuple(sorted(velocities))


# ---------------------------------------------------------------- SoundFont checks


def resolve_sf2(path: str | os.PathLike | None = None) -> Path:
    """The SoundFont to render: ``path``, or FluidR3_GM from Debian when None.

    Checks what can be checked without FluidSynth: the file exists and its
    RIFF header says ``sfbk`` with the size the file has (a truncated download
    fails here with a clear message rather than deep inside FluidSynth).

    Raises:
        UserError: missing, not a file, not a SoundFont, or truncated.
    """
    if path is None:
        if not DEFAULT_SF2.is_file():
            raise UserError(f"the default SoundFont {DEFAULT_SF2} is missing: install it with "
                            f"`sudo apt-get install {SF2_PACKAGE}` (scripts/setup.sh does), "
                            f"or pass --sf2 PATH")
        sf2 = DEFAULT_SF2
    else:
        sf2 = Path(path).expanduser()
        if not sf2.exists():
            raise UserError(f"SoundFont {sf2} does not exist")
        if not sf2.is_file():
            raise UserError(f"SoundFont {sf2} is not a file")
    size = sf2.stat().st_size
    with open(sf2, "rb") as fh:
        header = fh.read(12)
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"sfbk":
        raise UserError(f"SoundFont {sf2} is not a SoundFont 2 file (no RIFF 'sfbk' header)")
    declared = struct.unpack("<I", header[4:8])[0] + 8
    if declared != size:
        raise UserError(f"SoundFont {sf2} is corrupt: its header declares {declared} bytes "
                        f"but the file has {size} (truncated or damaged)")
    return sf2.resolve()


_FLUID_LOG_LEVELS = range(5)       # FLUID_PANIC, FLUID_ERR, FLUID_WARN, FLUID_INFO, FLUID_DBG
_fluid_messages: list[str] = []
_fluid_log_callback = None


def _route_fluidsynth_log(lib) -> None:
    """Send FluidSynth's messages to logging (debug level) and keep the last few.

    FluidSynth writes its errors to stderr; a failed load is reported to the
    user as one UserError that quotes them instead.
    """
    global _fluid_log_callback
    if _fluid_log_callback is not None:
        return
    proto = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)

    def handle(level, message, _data):
        text = message.decode("utf-8", "replace") if message else ""
        _fluid_messages.append(text)
        del _fluid_messages[:-8]
        log.debug("fluidsynth(%s): %s", level, text)

    _fluid_log_callback = proto(handle)          # kept alive: FluidSynth holds the pointer
    lib.fluid_set_log_function.argtypes = [ctypes.c_int, proto, ctypes.c_void_p]
    for level in _FLUID_LOG_LEVELS:
        lib.fluid_set_log_function(level, _fluid_log_callback, None)


def _load_fluidsynth():
    """pyfluidsynth and the libfluidsynth handle, or a UserError naming the fix."""
    try:
        import fluidsynth
    except ImportError as err:
        raise UserError(f"FluidSynth is not usable ({err}): install the Debian packages "
                        "fluidsynth and libfluidsynth3 and the Python package pyfluidsynth "
                        "(scripts/setup.sh does both)") from None
    lib = getattr(fluidsynth, "_fl", None)
    if lib is None:
        lib = ctypes.CDLL(getattr(fluidsynth, "lib", None) or ctypes.util.find_library("fluidsynth"))
    lib.fluid_synth_write_float.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                            ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                            ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.fluid_synth_write_float.restype = ctypes.c_int
    _route_fluidsynth_log(lib)
    return fluidsynth, lib


class NoteRenderer:
    """One FluidSynth synthesizer with one SoundFont loaded, rendering single notes.

    No audio driver: samples are pulled with ``fluid_synth_write_float`` (the
    float path, so no dither noise and the peak can be measured before
    quantizing). Reverb and chorus are off: notes stay dry and a note renders
    bit-identically whatever was rendered before it.

    Args:
        sf2: path of the SoundFont (checked with :func:`resolve_sf2` first).
        gain: FluidSynth's master gain.
    Raises:
        UserError: FluidSynth is missing, or cannot load the file.
    """

    def __init__(self, sf2: str | os.PathLike, gain: float = DEFAULT_GAIN):
        fluidsynth, self._lib = _load_fluidsynth()
        self.sf2 = Path(sf2)
        self.gain = float(gain)
        self._synth = fluidsynth.Synth(gain=self.gain, samplerate=SAMPLE_RATE, channels=16,
                                       **{"synth.reverb.active": 0, "synth.chorus.active": 0})
        del _fluid_messages[:]
        self._sfid = self._synth.sfload(str(self.sf2))
        if self._sfid < 0:
            said = "; ".join(m for m in _fluid_messages if m) or "no reason given"
            self.close()
            raise UserError(f"SoundFont {self.sf2} could not be loaded (corrupt or not a "
                            f"SoundFont 2 file): FluidSynth says: {said}")
        self._buffer = np.zeros(2 * NUM_FRAMES, dtype=np.float32)

    def preset_name(self, program: int, bank: int = 0) -> str | None:
        """The SoundFont's preset name at (bank, program), or None if it has none."""
        return self._synth.sfpreset_name(self._sfid, bank, int(program))

    def _render(self, num_frames: int, offset: int = 0) -> None:
        # Interleaved stereo into self._buffer from frame `offset` on.
        ptr = self._buffer.ctypes.data + 8 * offset
        status = self._lib.fluid_synth_write_float(self._synth.synth, num_frames,
                                                   ptr, 0, 2, ptr, 1, 2)
        if status != 0:
            raise RuntimeError(f"FluidSynth failed to render {num_frames} frames")

    def render(self, program: int, pitch: int, velocity: int) -> np.ndarray:
        """One NSynth note: note-on held 3 s, note-off, 1 s of release.

        Args:
            program: GM program (bank 0).
            pitch: MIDI key.
            velocity: MIDI velocity.
        Returns:
            (64000,) float32, mono (mean of FluidSynth's left and right).
        """
        synth = self._synth
        # Silence whatever still sounds and let the mixer hand its voices back
        # (a killed voice is freed during the next blocks, not at once), so the
        # priming below and the note find the same free voices.
        synth.all_sounds_off(0)
        self._render(_PRIME_FRAMES)
        synth.system_reset()            # controllers, pitch bend, programs back to default
        synth.program_select(0, self._sfid, 0, int(program))
        # Priming: see _PRIME_FRAMES.
        synth.noteon(0, int(pitch), int(velocity))
        self._render(_PRIME_FRAMES)
        synth.all_sounds_off(0)
        self._render(_PRIME_FRAMES)
        synth.noteon(0, int(pitch), int(velocity))
        self._render(HELD_FRAMES)
        synth.noteoff(0, int(pitch))
        # The release tail beyond 4 s is cut, as in NSynth.
        self._render(RELEASE_FRAMES, offset=HELD_FRAMES)
        stereo = self._buffer.reshape(NUM_FRAMES, 2)
        return stereo.mean(axis=1, dtype=np.float32)

    def close(self) -> None:
        """Free the synthesizer and its SoundFont."""
        if getattr(self, "_synth", None) is not None:
            self._synth.delete()
            self._synth = None

    def __enter__(self) -> "NoteRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_soundfont(sf2: str | os.PathLike, programs: Iterable[int]) -> dict[int, str]:
    """Load the SoundFont and check that it has a bank-0 preset for every program.

    Args:
        sf2: a path already checked by :func:`resolve_sf2`.
        programs: GM program numbers.
    Returns:
        program -> the SoundFont's preset name.
    Raises:
        UserError: the file does not load, or some programs have no preset.
    """
    with NoteRenderer(sf2) as renderer:
        names = {p: renderer.preset_name(p) for p in programs}
    missing = [p for p, name in names.items() if name is None]
    if missing:
        listed = ", ".join(f"{p} ({gm_program(p).name})" for p in missing)
        raise UserError(f"SoundFont {sf2} has no bank-0 preset for program(s) {listed}: "
                        f"choose others with --programs")
    return names


# ---------------------------------------------------------------- notes


@dataclass(frozen=True)
class NoteSpec:
    """One note to render and its NSynth names."""

    program: int
    pitch: int
    velocity: int

    @property
    def instrument_str(self) -> str:
        return INSTRUMENT_NAMES[self.program]

    @property
    def note_str(self) -> str:
        return nsynth.format_note_str(self.instrument_str, self.pitch, self.velocity)

    @property
    def note_id(self) -> int:
        # NSynth's `note` is a unique integer; this one is stable across runs and selections.
        return (self.program * 128 + self.pitch) * 128 + self.velocity

    def metadata(self) -> dict:
        """Its examples.json entry (NSynth's full field set, qualities all 0).

        ``instrument`` is the GM program number: unique per instrument and
        the same in every build from any GM SoundFont.
        """
        return nsynth.example_metadata(self.instrument_str, self.pitch, self.velocity,
                                       note=self.note_id, instrument=self.program)


def plan_notes(programs: Sequence[int], pitches: Sequence[int],
               velocities: Sequence[int]) -> list[NoteSpec]:
    """Every (program, pitch, velocity), in that order."""
    return [NoteSpec(p, k, v) for p in programs for k in pitches for v in velocities]


def wav_path(out: str | os.PathLike, note_str: str) -> Path:
    """``<out>/audio/<note_str>.wav``."""
    return Path(out) / "audio" / f"{note_str}.wav"


def is_complete(path: str | os.PathLike) -> bool:
    """True if ``path`` is a finished note: WAV, mono, 16 kHz, 16-bit PCM, 64000 frames."""
    import soundfile as sf

    path = Path(path)
    try:
        info = sf.info(str(path))
        size = path.stat().st_size
    except (OSError, RuntimeError, sf.LibsndfileError):
        return False
    return (info.format == "WAV" and info.subtype == "PCM_16" and info.channels == 1
            and info.samplerate == SAMPLE_RATE and info.frames == NUM_FRAMES
            and size >= 2 * NUM_FRAMES)


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] to int16 (rounded; beyond full scale clipped)."""
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)


def level_dbfs(audio: np.ndarray) -> tuple[float, float]:
    """(RMS, peak) of float audio in dB relative to full scale (-inf for silence)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    to_db = lambda x: 20 * math.log10(x) if x > 0 else -math.inf  # noqa: E731
    return to_db(rms), to_db(peak)


@dataclass(frozen=True)
class RenderedNote:
    """What rendering one note did: written to disk, or skipped as silent; its levels."""

    index: int
    written: bool
    rms_dbfs: float
    peak_dbfs: float


def render_notes(renderer: NoteRenderer, out: str | os.PathLike,
                 notes: Sequence[tuple[int, NoteSpec]],
                 silence_dbfs: float = SILENCE_DBFS) -> list[RenderedNote]:
    """Render notes and write each non-silent one to ``<out>/audio/<note_str>.wav``.

    Args:
        renderer: a loaded :class:`NoteRenderer`.
        out: the dataset folder.
        notes: (index, spec) pairs; the index is echoed back.
        silence_dbfs: RMS below which a note counts as silent and is not written.
    Returns:
        one :class:`RenderedNote` per input, in order.
    """
    results = []
    for index, spec in notes:
        audio = renderer.render(spec.program, spec.pitch, spec.velocity)
        rms_db, peak_db = level_dbfs(audio)
        written = rms_db >= silence_dbfs
        if written:
            write_note_wav(wav_path(out, spec.note_str), to_pcm16(audio))
        results.append(RenderedNote(index, written, rms_db, peak_db))
    return results


class _RenderWorker:
    """A Ray actor body: loads the SoundFont once, then renders and writes chunks of notes."""

    def __init__(self, sf2: str, out: str, gain: float, silence_dbfs: float):
        self._renderer = NoteRenderer(sf2, gain)
        self._out = out
        self._silence_dbfs = silence_dbfs

    def render(self, notes):
        return render_notes(self._renderer, self._out, notes, self._silence_dbfs)


# ---------------------------------------------------------------- the build


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


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _render_local(sf2, out, gain, silence_dbfs, todo, on_chunk, chunk_notes):
    with NoteRenderer(sf2, gain) as renderer:
        for chunk in _chunks(todo, chunk_notes):
            on_chunk(render_notes(renderer, out, chunk, silence_dbfs))


def _render_ray(sf2, out, gain, silence_dbfs, todo, on_chunk, num_workers, chunk_notes):
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # Workers write the WAVs themselves (audio never crosses the object store),
    # so they run on the driver's node, where `out` is.
    node_id = ray.get_runtime_context().get_node_id()
    cpus = next((int(n["Resources"].get("CPU", 0)) for n in ray.nodes()
                 if n["NodeID"] == node_id and n["Alive"]), 1)
    if num_workers > cpus:
        # Actors ask for one CPU each: more than the node has would wait forever.
        log.warning("%d workers asked for, this Ray node has %d CPUs: using %d",
                    num_workers, cpus, max(1, cpus))
        num_workers = max(1, cpus)
    chunks = _chunks(todo, chunk_notes)
    num_workers = min(num_workers, len(chunks))
    worker_cls = ray.remote(num_cpus=1)(_RenderWorker).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False))
    workers = [worker_cls.remote(str(sf2), str(out), gain, silence_dbfs)
               for _ in range(num_workers)]
    pending: dict = {}
    # Two chunks in flight per worker: it never waits for the driver to hand it work.
    queue = list(reversed(chunks))
    for worker in workers * 2:
        if queue:
            pending[worker.render.remote(queue.pop())] = worker
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            worker = pending.pop(done[0])
            if queue:
                pending[worker.render.remote(queue.pop())] = worker
            on_chunk(ray.get(done[0]))
    finally:
        for worker in workers:
            ray.kill(worker)


@dataclass
class PreviousNormalization:
    """What an earlier build of a folder did to its files (its soundfont.json)."""

    gains: dict[int, float] = field(default_factory=dict)   # gain in dB per scaled program
    pending: set[int] = field(default_factory=set)          # programs whose scaling was cut short
    target_dbfs: float | None = None
    peak_limited: list[int] = field(default_factory=list)


def _previous_normalization(out: Path) -> PreviousNormalization:
    try:
        info = json.loads((out / "soundfont.json").read_text())
    except (OSError, ValueError):
        return PreviousNormalization()
    norm = info.get("normalization") or {}
    return PreviousNormalization(gains={int(p): float(g) for p, g in (norm.get("gains_db") or {}).items()},
                                 pending={int(p) for p in norm.get("pending", ())},
                                 target_dbfs=norm.get("target_rms_dbfs"),
                                 peak_limited=[int(p) for p in norm.get("peak_limited", ())])


def _settled_programs(out: Path, previous: PreviousNormalization, kept: Sequence[NoteSpec],
                      target_dbfs: float, carried: dict[str, float]) -> tuple[set[int], list[int]]:
    """Programs whose gain an earlier build already set for these very notes at this target:
    every note on disk at that gain, none rendered since, the same notes as then. Their files
    need not be read again. Returns (those programs, those of them the peak ceiling limited)."""
    if previous.target_dbfs != target_dbfs or previous.pending:
        return set(), []
    try:
        before = set(json.loads((out / "examples.json").read_text()))
    except (OSError, ValueError):
        return set(), []
    by_program: dict[int, set[str]] = {}
    for spec in kept:
        by_program.setdefault(spec.program, set()).add(spec.note_str)
    settled = {program for program, names in by_program.items()
               if program in previous.gains and names <= carried.keys()
               and names == {n for n in before if n.startswith(INSTRUMENT_NAMES[program] + "-")}}
    return settled, [p for p in previous.peak_limited if p in settled]


def normalize_instruments(out: str | os.PathLike, notes: Sequence[NoteSpec], target_dbfs: float,
                          carried_db: dict[str, float] | None = None
                          ) -> tuple[dict[int, float], list[int]]:
    """Scale each program's notes on disk by one gain: median RMS at ``target_dbfs``.

    The gain is lowered where it would take the program's loudest peak over
    :data:`NORMALIZE_PEAK_DBFS`. A file is rewritten only where its gain
    changes (by 0.01 dB or more), so a pass over a normalised folder changes nothing.

    Args:
        out: the dataset folder.
        notes: the notes on disk, every one of each program concerned.
        target_dbfs: the median RMS wanted, in dBFS.
        carried_db: the gain (dB) a file already carries from an earlier pass,
            by note_str; 0 (FluidSynth's level) for those not named.
    Returns:
        (each program's gain in dB from FluidSynth's level, the programs whose
        gain the peak ceiling lowered).
    """
    import soundfile as sf

    carried_db = carried_db or {}
    by_program: dict[int, list[NoteSpec]] = {}
    for spec in notes:
        by_program.setdefault(spec.program, []).append(spec)
    gains, limited = {}, []
    for program, specs in sorted(by_program.items()):
        # Every level as FluidSynth made it: the file's, less the gain it carries.
        audio = [sf.read(str(wav_path(out, s.note_str)), dtype="float32")[0] for s in specs]
        carried = [carried_db.get(s.note_str, 0.0) for s in specs]
        levels = [level_dbfs(a) for a in audio]
        rms_db = [rms - c for (rms, _), c in zip(levels, carried)]   # median of levels in dB
        peak_db = max(peak - c for (_, peak), c in zip(levels, carried))
        gain_db = target_dbfs - float(np.median(rms_db))
        if peak_db + gain_db > NORMALIZE_PEAK_DBFS:
            gain_db = NORMALIZE_PEAK_DBFS - peak_db
            limited.append(program)
        # Within 0.01 dB of the gain its files carry already, that gain stands:
        # 16-bit rounding moves a re-measured level by about 0.001 dB.
        gain_db = next((c for c in sorted(set(carried)) if abs(gain_db - c) < 0.01),
                       round(gain_db, 3))
        gains[program] = gain_db
        for spec, a, c in zip(specs, audio, carried):
            if abs(gain_db - c) >= 0.01:
                write_note_wav(wav_path(out, spec.note_str), to_pcm16(a * 10 ** ((gain_db - c) / 20)))
    return gains, limited


def build_soundfont_dataset(out: str | os.PathLike, sf2: str | os.PathLike | None = None,
                            programs: Sequence[int] | None = None,
                            pitches: Sequence[int] | None = None,
                            velocities: Sequence[int] | None = None,
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
        pitches: MIDI pitches; None for :data:`DEFAULT_PITCHES`.
        velocities: NSynth velocities; None for all five.
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
    pitches = tuple(DEFAULT_PITCHES if pitches is None else pitches)
    velocities = tuple(DEFAULT_VELOCITIES if velocities is None else velocities)
    # Everything is checked here, before the first note, so that a bad flag
    # costs nothing and a good run is not cut short.
    if not programs:
        raise UserError("no program selected")
    for program in programs:
        instrument_str(program)
    if not pitches:
        raise UserError("the pitch range is empty")
    for pitch in pitches:
        if not nsynth.PITCH_RANGE[0] <= int(pitch) <= nsynth.PITCH_RANGE[1]:
            raise UserError(f"pitch {pitch} is outside MIDI's 0-127")
    if not velocities:
        raise UserError("no velocity selected")
    for velocity in velocities:
        if int(velocity) not in nsynth.VELOCITIES:
            raise UserError(f"velocity {velocity} is not one of NSynth's "
                            f"{', '.join(map(str, nsynth.VELOCITIES))}")
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
    previous = _previous_normalization(out)
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
        from .runtime import init_ray

        init_ray(num_cpus=int(num_workers))
    start = time.perf_counter()
    try:
        if todo and num_workers:
            _render_ray(sf2, out, gain, silence_dbfs, todo, on_chunk, int(num_workers), chunk_notes)
        elif todo:
            _render_local(sf2, out, gain, silence_dbfs, todo, on_chunk, chunk_notes)
    finally:
        bar.close()
    build.render_seconds = time.perf_counter() - start

    examples = {n.note_str: n.metadata() for n, done in zip(notes, on_disk) if done}
    build.num_written = len(examples)
    if normalize_rms_dbfs is not None:
        kept = [n for n, done in zip(notes, on_disk) if done]
        # Instruments an earlier build normalised, unchanged since: their gains stand
        # and their files are not read again.
        settled, settled_limited = _settled_programs(out, previous, kept, float(normalize_rms_dbfs), carried)
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
