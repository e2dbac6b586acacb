"""How a library's notes map onto a sampler's keys and velocities: what every format writes.

A rendered library holds a grid of notes (instrument x pitch x velocity). A sampler
needs, per instrument, zones that cover its keys and velocities: each rendered
pitch plays its own key and is transposed over the keys around it (the nearest
rendered pitch wins, the lower one on a tie; the lowest and highest stretch to
MIDI keys 0 and 127), and each rendered velocity covers the velocities above the
next softer one (25, 50, 75, 100, 127 give 1-25, 26-50, 51-75, 76-100, 101-127).
Every format module (:mod:`.sfz`, :mod:`.dspreset`, :mod:`.sf2`) writes these same
zones, with the loop and release found on each note (:mod:`.notes`).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

MIDI_KEYS = (0, 127)
VELOCITY_RANGE = (1, 127)


def key_ranges(pitches: Sequence[int]) -> list[tuple[int, int, int]]:
    """``(pitch, lokey, hikey)`` per rendered pitch: a partition of MIDI keys 0-127.

    Args:
        pitches: the rendered pitches (any order, repeats ignored).
    Returns:
        one triple per pitch, sorted; the boundary between two neighbours is their
        midpoint (the lower pitch takes the middle key of an even gap).
    """
    ordered = sorted(set(int(p) for p in pitches))
    out = []
    for i, p in enumerate(ordered):
        lo = MIDI_KEYS[0] if i == 0 else (ordered[i - 1] + p) // 2 + 1
        hi = MIDI_KEYS[1] if i == len(ordered) - 1 else (p + ordered[i + 1]) // 2
        out.append((p, lo, hi))
    return out


def velocity_ranges(velocities: Sequence[int]) -> list[tuple[int, int, int]]:
    """``(velocity, lovel, hivel)`` per rendered velocity: a partition of MIDI velocities 1-127.

    A layer covers the velocities above the next softer layer up to its own; the
    loudest stretches to 127.
    """
    ordered = sorted(set(int(v) for v in velocities))
    out = []
    for i, v in enumerate(ordered):
        lo = VELOCITY_RANGE[0] if i == 0 else ordered[i - 1] + 1
        hi = VELOCITY_RANGE[1] if i == len(ordered) - 1 else v
        out.append((v, lo, hi))
    return out


@dataclass(frozen=True)
class Zone:
    """One sample and the keys and velocities it plays.

    Attributes:
        path: the sample, relative to the library's root.
        pitch: the MIDI key it was rendered at (it plays untransposed there).
        lokey, hikey: the keys it covers (inclusive).
        velocity: the velocity it was rendered at; lovel, hivel: the velocities it covers.
        loop_start, loop_end: the sustain loop in samples (``loop_end`` inclusive: the
            last sample played before jumping back to ``loop_start``); -1 for none.
        release: seconds the sampler takes to fade the note out after its key is let go.
        sha256: the sample file's digest (a format file is rewritten when any changes).
    """

    path: str
    pitch: int
    lokey: int
    hikey: int
    velocity: int
    lovel: int
    hivel: int
    loop_start: int = -1
    loop_end: int = -1
    release: float = 0.0
    sha256: str = ""

    @property
    def looped(self) -> bool:
        return self.loop_start >= 0 and self.loop_end > self.loop_start


@dataclass(frozen=True)
class InstrumentMap:
    """One instrument's zones, softest velocity layer first, lowest key first within a layer.

    Attributes:
        name: the instrument's name in the library (a plain instrument or a mix's name).
        mix: the mix spec of a mixed instrument ("" otherwise).
        zones: its zones.
    """

    name: str
    mix: str
    zones: tuple[Zone, ...]

    def layers(self) -> list[tuple[int, int, list[Zone]]]:
        """``(lovel, hivel, zones)`` per velocity layer, softest first."""
        by_layer: dict[tuple[int, int], list[Zone]] = defaultdict(list)
        for zone in self.zones:
            by_layer[(zone.lovel, zone.hivel)].append(zone)
        return [(lo, hi, by_layer[(lo, hi)]) for lo, hi in sorted(by_layer)]


def _row_value(row: Mapping, key: str, default):
    value = row.get(key, default)
    return default if value is None else value


def _float32(value) -> float:
    """As the manifest keeps it (float32): a row fresh from a render and the same row read back map alike."""
    return float(np.float32(value))


def instrument_maps(rows: Iterable[Mapping], instruments: Sequence[str] | None = None,
                    fmt: str | None = None) -> list[InstrumentMap]:
    """The zones of each instrument of a library, from its manifest rows.

    Args:
        rows: manifest rows (``instrument``, ``pitch``, ``velocity``, ``path``; ``mix``,
            ``sha256``, ``loop_start``, ``loop_end`` and ``release`` where present).
        instruments: the instruments to map (None: all in ``rows``).
        fmt: only samples with this extension are mapped (a library may hold WAV and FLAC).
    Returns:
        one :class:`InstrumentMap` per instrument that has samples, sorted by name.
    """
    wanted = set(instruments) if instruments is not None else None
    by_name: dict[str, dict[int, dict[int, Mapping]]] = defaultdict(lambda: defaultdict(dict))
    mixes: dict[str, str] = {}
    for row in rows:
        name = row["instrument"]
        if (wanted is not None and name not in wanted) or (fmt and not row["path"].endswith("." + fmt)):
            continue
        by_name[name][int(row["velocity"])][int(row["pitch"])] = row
        mixes[name] = _row_value(row, "mix", "")
    maps = []
    for name in sorted(by_name):
        layers = by_name[name]
        zones = []
        for velocity, lovel, hivel in velocity_ranges(list(layers)):
            notes = layers[velocity]
            for pitch, lokey, hikey in key_ranges(list(notes)):
                row = notes[pitch]
                zones.append(Zone(row["path"], pitch, lokey, hikey, velocity, lovel, hivel,
                                  int(_row_value(row, "loop_start", -1)), int(_row_value(row, "loop_end", -1)),
                                  _float32(_row_value(row, "release", 0.0)), str(_row_value(row, "sha256", ""))))
        maps.append(InstrumentMap(name, mixes[name], tuple(zones)))
    return maps


# ----------------------------------------------------------------------------------------------- labels

# What the page and the SoundFont split know of an instrument beyond its notes: NSynth's family
# and source (from its name, or from the library's instruments.json), and where a corpus
# instrument came from (its SoundFont file, bank, program and preset name) when the library's
# metadata carries it.
LABEL_FIELDS = ("family", "source", "soundfont", "bank", "program", "preset")
MIX_FAMILY = "mix"
OTHER = "other"
# Keys that mean a label in the files render --instrument-info reads (an instruments.json, an
# NSynth examples.json, a SoundFont corpus's metadata), first match wins.
_ALIASES = {
    "family": ("family", "instrument_family_str"),
    "source": ("source", "instrument_source_str"),
    "soundfont": ("soundfont", "soundfont_file", "sf2", "file"),
    "bank": ("bank",),
    "program": ("program",),
    "preset": ("preset", "preset_name"),
}
_NAME_KEYS = ("instrument_str", "instrument", "name")


def name_labels(name: str) -> tuple[str, str] | None:
    """``(family, source)`` of an NSynth-form name ``<family>_<source>_<number>``; None for any other name."""
    from ..nsynth import FAMILIES, SOURCES

    stem, _, number = name.rpartition("_")
    if not number.isdigit():
        return None
    for source in SOURCES:
        if stem.endswith("_" + source) and stem[: -len(source) - 1] in FAMILIES:
            return stem[: -len(source) - 1], source
    return None


def instrument_labels(name: str, mix: str = "", info: Mapping | None = None) -> dict:
    """The labels of one instrument (:data:`LABEL_FIELDS`, those known).

    ``family`` and ``source`` always: from ``info``, else from an NSynth-form name, else
    ``mix`` (and ``synthetic``) for a timbre mix, else ``other``. ``soundfont`` (the file's
    base name), ``bank``, ``program`` and ``preset`` only where ``info`` gives them.
    """
    info = dict(info or {})
    parsed = name_labels(name)
    if mix:
        family, source = MIX_FAMILY, "synthetic"
    elif parsed:
        family, source = parsed
    else:
        family, source = OTHER, OTHER
    labels = {"family": str(info.get("family") or family), "source": str(info.get("source") or source)}
    for key in ("soundfont", "preset"):
        if info.get(key):
            labels[key] = str(info[key]).replace("\\", "/").rsplit("/", 1)[-1] if key == "soundfont" else str(info[key])
    for key in ("bank", "program"):
        if isinstance(info.get(key), (int, float)) and not isinstance(info.get(key), bool):
            labels[key] = int(info[key])
    return labels


def _entry_labels(entry: Mapping) -> dict:
    out = {}
    for field, keys in _ALIASES.items():
        for key in keys:
            value = entry.get(key)
            if value is not None and value != "" and not isinstance(value, (dict, list)):
                out[field] = value
                break
    return out


def read_instrument_info(data: Any) -> dict[str, dict]:
    """``{instrument: labels}`` from the JSON of an instrument metadata file.

    Takes ``{instrument: {field: value}}``, the same under an ``"instruments"`` key, a list
    of objects naming their instrument (``instrument_str``, ``instrument`` or ``name``), or
    an NSynth ``examples.json`` (``{note_str: {instrument_str: ..., ...}}``: one entry per
    instrument is enough). Fields are read by the names of ``_ALIASES`` (``preset_name``,
    ``instrument_family_str``...); other fields are ignored.

    Raises:
        ValueError naming what is not of that shape.
    """
    if isinstance(data, Mapping) and isinstance(data.get("instruments"), (Mapping, list)):
        data = data["instruments"]
    entries: list[tuple[str, Mapping]] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            if not isinstance(value, Mapping):
                raise ValueError(f"instrument info: the entry of {key!r} is not an object")
            named = next((value[k] for k in _NAME_KEYS if isinstance(value.get(k), str)), None)
            entries.append((named or str(key), value))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            named = next((value[k] for k in _NAME_KEYS if isinstance(value.get(k), str)), None) \
                if isinstance(value, Mapping) else None
            if named is None:
                raise ValueError(f"instrument info: item {i} is not an object naming its instrument "
                                 f"({', '.join(_NAME_KEYS)})")
            entries.append((named, value))
    else:
        raise ValueError(f"instrument info: expected an object or a list, got {type(data).__name__}")
    info: dict[str, dict] = {}
    for name, entry in entries:
        labels = _entry_labels(entry)
        if labels:
            info.setdefault(name, {}).update(labels)
    return info
