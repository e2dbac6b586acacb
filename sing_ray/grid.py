"""The pitch and velocity axes of a note grid, as a user types them: one grammar for every command.

``sing-ray render`` (a sample library) and ``sing-ray data soundfont`` (a dataset)
both take ``--pitches`` and ``--velocities``; both parse them here:

- pitches: comma-separated items, each a MIDI pitch ``N`` or a range ``LO:HI[:STEP]``
  with both bounds included (``21:108``, ``36:84:4``, ``60,64,67``, ``48:60,72``);
- velocities: ``all`` (NSynth's 25, 50, 75, 100, 127) or comma-separated velocities,
  each one of NSynth's (``100``, ``25,127``).

Either gives the sorted distinct values. A Python caller may pass a sequence of
integers instead of text; it is checked the same way.
"""
from __future__ import annotations

from typing import Iterable

from . import nsynth
from .errors import UserError

PITCHES_METAVAR = "N|LO:HI[:STEP],..."
PITCHES_HELP = ("MIDI pitches: comma-separated pitches N and ranges LO:HI[:STEP], bounds included "
                "(e.g. 21:108, 36:84:4, 60,64,67)")
VELOCITIES_METAVAR = "all|V,..."
VELOCITIES_HELP = "velocities: 'all' or a comma list, each one of NSynth's 25,50,75,100,127"


def _check_pitches(pitches: Iterable[int]) -> tuple[int, ...]:
    lo, hi = nsynth.PITCH_RANGE
    values = sorted({int(p) for p in pitches})
    bad = [p for p in values if not lo <= p <= hi]
    if bad:
        raise UserError(f"--pitches: {bad[0]} outside the MIDI range {lo}-{hi}")
    return tuple(values)


def _check_velocities(velocities: Iterable[int]) -> tuple[int, ...]:
    values = sorted({int(v) for v in velocities})
    for v in values:
        if v not in nsynth.VELOCITIES:
            raise UserError(f"--velocities: velocity {v} is not one of NSynth's "
                            f"{', '.join(map(str, nsynth.VELOCITIES))}")
    return tuple(values)


def parse_pitches(text: str | Iterable[int]) -> tuple[int, ...]:
    """``--pitches``: ``"21:108"``, ``"21:108:12"``, ``"60,64,67"`` or a mix (see the module docstring).

    Returns:
        the sorted distinct MIDI pitches; empty text gives none.
    Raises:
        UserError naming the flag: an item that is not ``N`` or ``LO:HI[:STEP]`` of integers,
        a step below 1, an empty range (``LO`` above ``HI``), a pitch outside MIDI's 0-127.
    """
    if not isinstance(text, str):
        return _check_pitches(text)
    pitches: set[int] = set()
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        try:
            parts = [int(p) for p in item.split(":")]
        except ValueError:
            raise UserError(f"--pitches: {item!r} is not N or LO:HI[:STEP] of integers") from None
        if len(parts) == 1:
            pitches.add(parts[0])
            continue
        if len(parts) not in (2, 3):
            raise UserError(f"--pitches: {item!r} is not N or LO:HI[:STEP]")
        lo, hi, step = parts[0], parts[1], parts[2] if len(parts) == 3 else 1
        if step < 1:
            raise UserError(f"--pitches: the step must be >= 1 in {item!r}")
        if lo > hi:
            raise UserError(f"--pitches: {item!r} is an empty range (LO {lo} is above HI {hi})")
        pitches.update(range(lo, hi + 1, step))
    return _check_pitches(pitches)


def parse_velocities(text: str | Iterable[int]) -> tuple[int, ...]:
    """``--velocities``: ``"all"`` or a comma list of NSynth velocities (25, 50, 75, 100, 127).

    Returns:
        the sorted distinct velocities; empty text gives none.
    Raises:
        UserError naming the flag: an item that is not an integer, or not one of NSynth's velocities.
    """
    if not isinstance(text, str):
        return _check_velocities(text)
    if text.strip().lower() == "all":
        return tuple(nsynth.VELOCITIES)
    velocities: set[int] = set()
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        try:
            velocities.add(int(item))
        except ValueError:
            raise UserError(f"--velocities: {item!r} is not an integer") from None
    return _check_velocities(velocities)
