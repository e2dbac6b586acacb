"""NSynth metadata: field names, vocabularies, note names and the leak-free split.

Pure functions over plain dicts; no Ray, no audio I/O. The split follows the
paper: every velocity of one (instrument, pitch) pair lands in the same split,
so a model is judged on pitches of instruments it has never heard at that pitch.
"""
from __future__ import annotations

import hashlib
import re
from typing import Iterable, Mapping

SAMPLE_RATE = 16000
NUM_FRAMES = 64000            # samples per note: 4 s at 16 kHz
SILENT_PEAK = 1e-4            # -80 dBFS: a generated note whose peak is below this is silent
VELOCITIES = (25, 50, 75, 100, 127)
PITCH_RANGE = (0, 127)
SPLITS = ("train", "valid", "test")
VALID_FRACTION = 0.1
TEST_FRACTION = 0.1
DEFAULT_SPLIT_SEED = 0

FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed",
            "string", "synth_lead", "vocal")
SOURCES = ("acoustic", "electronic", "synthetic")
QUALITIES = ("bright", "dark", "distortion", "fast_decay", "long_release", "multiphonic",
             "nonlinear_env", "percussive", "reverb", "tempo-synced")

# The fields of one example in NSynth's examples.json, and their Python types.
FIELDS = {
    "note": int,
    "note_str": str,
    "instrument": int,
    "instrument_str": str,
    "pitch": int,
    "velocity": int,
    "sample_rate": int,
    "qualities": list,
    "qualities_str": list,
    "instrument_family": int,
    "instrument_family_str": str,
    "instrument_source": int,
    "instrument_source_str": str,
}

_NOTE_RE = re.compile(r"^(?P<instrument>[a-z_]+_(?:acoustic|electronic|synthetic)_\d{3})"
                      r"-(?P<pitch>\d{3})-(?P<velocity>\d{3})$")


def format_note_str(instrument_str: str, pitch: int, velocity: int) -> str:
    """``guitar_acoustic_010-060-100``: NSynth's name for one note."""
    return f"{instrument_str}-{int(pitch):03d}-{int(velocity):03d}"


def parse_note_str(note_str: str) -> tuple[str, int, int]:
    """Inverse of :func:`format_note_str`. Raises ValueError on a malformed name."""
    match = _NOTE_RE.match(note_str)
    if not match:
        raise ValueError(f"{note_str!r} is not of the form <family>_<source>_<NNN>-<pitch:03d>-<velocity:03d>")
    return match["instrument"], int(match["pitch"]), int(match["velocity"])


def instrument_name(family: str, source: str, index: int) -> str:
    """``keyboard_acoustic_000``: NSynth's instrument naming."""
    return f"{family}_{source}_{index:03d}"


def velocity_index(velocity: int) -> int:
    """Index of an NSynth velocity in :data:`VELOCITIES` (the model's velocity table)."""
    try:
        return VELOCITIES.index(int(velocity))
    except ValueError:
        raise ValueError(f"velocity {velocity} is not one of NSynth's {VELOCITIES}") from None


def split_of(instrument_str: str, pitch: int, seed: int = DEFAULT_SPLIT_SEED,
             valid_fraction: float = VALID_FRACTION, test_fraction: float = TEST_FRACTION) -> str:
    """The split of an (instrument, pitch) pair: a seeded hash, independent of shards and workers."""
    key = f"{seed}:{instrument_str}:{int(pitch)}".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    if u < valid_fraction:
        return "valid"
    if u < valid_fraction + test_fraction:
        return "test"
    return "train"


def validate_metadata(note_str: str, meta: Mapping) -> str | None:
    """Check one examples.json entry. Returns None if sane, else a reason a person can act on."""
    if not isinstance(meta, Mapping):
        return f"metadata is a {type(meta).__name__}, expected an object"
    missing = [k for k in FIELDS if k not in meta]
    if missing:
        return f"metadata lacks field(s) {', '.join(missing)}"
    for key, typ in FIELDS.items():
        value = meta[key]
        if typ is int and (isinstance(value, bool) or not isinstance(value, int)):
            return f"field {key} is {value!r}, expected an integer"
        if typ is not int and not isinstance(value, typ):
            return f"field {key} is {value!r}, expected a {typ.__name__}"
    if meta["note_str"] != note_str:
        return f"note_str {meta['note_str']!r} differs from its key {note_str!r}"
    pitch, velocity = meta["pitch"], meta["velocity"]
    if not PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1]:
        return f"pitch {pitch} outside {PITCH_RANGE[0]}-{PITCH_RANGE[1]}"
    if velocity not in VELOCITIES:
        return f"velocity {velocity} is not one of {', '.join(map(str, VELOCITIES))}"
    if meta["sample_rate"] != SAMPLE_RATE:
        return f"sample_rate {meta['sample_rate']} in metadata, expected {SAMPLE_RATE}"
    try:
        inst, p, v = parse_note_str(note_str)
    except ValueError as err:
        return str(err)
    if (inst, p, v) != (meta["instrument_str"], pitch, velocity):
        return (f"note_str {note_str!r} does not match its fields "
                f"(instrument_str={meta['instrument_str']!r}, pitch={pitch}, velocity={velocity})")
    fam, src = meta["instrument_family_str"], meta["instrument_source_str"]
    if fam not in FAMILIES:
        return f"instrument_family_str {fam!r} is not an NSynth family"
    if src not in SOURCES:
        return f"instrument_source_str {src!r} is not an NSynth source"
    if FAMILIES.index(fam) != meta["instrument_family"]:
        return f"instrument_family {meta['instrument_family']} does not match {fam!r}"
    if SOURCES.index(src) != meta["instrument_source"]:
        return f"instrument_source {meta['instrument_source']} does not match {src!r}"
    if not meta["instrument_str"].startswith(f"{fam}_{src}_"):
        return f"instrument_str {meta['instrument_str']!r} does not start with {fam}_{src}_"
    q = meta["qualities"]
    if len(q) != len(QUALITIES) or any(x not in (0, 1) for x in q):
        return f"qualities must be {len(QUALITIES)} flags of 0/1, got {q!r}"
    return None


def build_vocabulary(instrument_strs: Iterable[str]) -> list[str]:
    """Dense instrument ids: the sorted distinct names (stable across shards and workers)."""
    return sorted(set(instrument_strs))


def example_metadata(instrument_str: str, pitch: int, velocity: int, note: int,
                     instrument: int, qualities: Iterable[int] = (0,) * len(QUALITIES)) -> dict:
    """An examples.json entry with NSynth's full field set (used by dataset builders and tests)."""
    name = instrument_str.rsplit("_", 1)[0]
    family, source = None, None
    for src in SOURCES:
        if name.endswith("_" + src):
            family, source = name[: -len(src) - 1], src
    if family not in FAMILIES or source is None:
        raise ValueError(f"{instrument_str!r} is not <family>_<source>_<NNN> with NSynth's names")
    qualities = [int(x) for x in qualities]
    return {
        "note": int(note),
        "note_str": format_note_str(instrument_str, pitch, velocity),
        "instrument": int(instrument),
        "instrument_str": instrument_str,
        "pitch": int(pitch),
        "velocity": int(velocity),
        "sample_rate": SAMPLE_RATE,
        "qualities": qualities,
        "qualities_str": [QUALITIES[i] for i, x in enumerate(qualities) if x],
        "instrument_family": FAMILIES.index(family),
        "instrument_family_str": family,
        "instrument_source": SOURCES.index(source),
        "instrument_source_str": source,
    }
