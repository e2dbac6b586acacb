"""The General MIDI program table: each GM program's NSynth family and source, and its instrument name.

NSynth names an instrument ``<family>_<source>_<NNN>``; a GM program renders as one
such instrument where NSynth has a family for it (none for percussion, pads and
sound effects). :func:`parse_programs` reads ``--programs``.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import nsynth
from ..errors import UserError


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
