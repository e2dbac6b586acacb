"""The presets of many SoundFonts sorted into instruments and those left out, with NSynth's names.

:func:`installed_soundfonts` finds the SoundFonts Debian installs (one entry per
real file); :func:`classify` turns every preset into a :class:`Candidate`, an
instrument with an NSynth family, source and pitches, or an :class:`Excluded`
with the reason; :func:`assign_names` names the instruments kept
``<family>_<source>_<NNN>`` as NSynth does. :data:`NSYNTH_FAMILY_NOTES` holds
NSynth's own notes per family, to set a corpus beside.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .. import nsynth
from ..errors import UserError
from .gm import gm_program
from .sf2info import SoundFontInfo

# Where Debian's SoundFont packages put their files (scripts/install_soundfonts.sh).
SEARCH_DIRS = (Path("/usr/share/sounds/sf2"), Path("/usr/share/sounds/sf3"), Path("/usr/share/soundfonts"))
SUFFIXES = (".sf2", ".sf3")
# NSynth's pitches: a piano's keys, A0 to C8.
NSYNTH_PITCHES = tuple(range(21, 109))
# GS puts an MT-32 (CM-64) map in variation bank 127 (sf_GMbank.sf2 has it): its
# program numbers are the MT-32's, so the GM table cannot give their family.
MT32_BANK = 127
# SoundFonts whose every sound is synthesized (an OPL-3 chip's FM voices sampled): NSynth's
# source says how a sound is made, so their instruments are "synthetic" whatever the program.
SYNTHETIC_SOUNDFONTS = re.compile(r"opl-?3|\bfm\b", re.IGNORECASE)
# A melodic bank's preset that is a drum kit by its name ("Steel Drums" is tuned and stays).
_KIT_NAME = re.compile(r"\bkit\b|drum ?set|percussion set", re.IGNORECASE)

# Why a preset is not an instrument: the key in reasons and its explanation.
REASONS = {
    "percussion": "drum kit (bank 128, or named a kit): NSynth has no drum family",
    "no_family": "its GM program has no NSynth family (pads, sound effects, unpitched percussion)",
    "mt32_bank": "GS bank 127 holds an MT-32 map whose program numbers are not General MIDI's",
    "no_keys": "no playable key among the pitches asked for (within 21-108)",
    "not_selected": "its program is outside --programs",
}

# NSynth's notes per family (train + valid + test, 305,979 notes of 1,006 instruments),
# the figures of the dataset's page (magenta.tensorflow.org/datasets/nsynth) as written down from memory,
# checked here only by their sum (docs/soundfont.md's table).
NSYNTH_FAMILY_NOTES = {
    "bass": 68955, "brass": 13830, "flute": 9423, "guitar": 35423, "keyboard": 54991,
    "mallet": 35066, "organ": 36577, "reed": 14866, "string": 20594, "synth_lead": 5501,
    "vocal": 10753,
}
NSYNTH_NOTES = 305979
NSYNTH_INSTRUMENTS = 1006


@dataclass(frozen=True)
class Candidate:
    """A melodic preset with an NSynth family: an instrument unless it duplicates an earlier one."""

    sf2: Path
    bank: int
    program: int
    preset: str
    key_range: tuple[int, int]
    family: str
    source: str
    pitches: tuple[int, ...]         # the pitches it is rendered at: asked for and playable

    @property
    def key(self) -> str:
        """``FluidR3_GM.sf2:008:004``: the preset's name in reports and corpus.json."""
        return f"{self.sf2.name}:{self.bank:03d}:{self.program:03d}"


@dataclass(frozen=True)
class Excluded:
    """A preset that is not an instrument, with the reason (a key of :data:`REASONS`)."""

    sf2: Path
    bank: int
    program: int
    preset: str
    reason: str
    detail: str = ""


def installed_soundfonts(dirs: Iterable[str | os.PathLike] = SEARCH_DIRS) -> list[Path]:
    """Every .sf2 and .sf3 file under ``dirs``, each real file once.

    Symlinks (Debian's alternatives, ``MuseScore_General.sf3`` -> the lossless
    ``.sf2``) are resolved, and a file counts once by its real path and size;
    dangling links are skipped.

    Returns:
        real paths, sorted by file name (then path).
    """
    found: dict[tuple[str, int], Path] = {}
    for folder in map(Path, dirs):
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() not in SUFFIXES:
                continue
            try:
                real = path.resolve(strict=True)
                size = real.stat().st_size
            except OSError:
                continue
            if real.is_file():
                found.setdefault((str(real), size), real)
    return sorted(found.values(), key=lambda p: (p.name, str(p)))


def soundfont_source(sf2: Path, gm_source: str) -> str:
    """The NSynth source of a program in this SoundFont: synthetic for an FM bank, else the GM table's."""
    return "synthetic" if SYNTHETIC_SOUNDFONTS.search(sf2.name) else gm_source


def classify(infos: Sequence[SoundFontInfo], pitches: Sequence[int] = NSYNTH_PITCHES,
             programs: Iterable[int] | None = None) -> tuple[list[Candidate], list[Excluded]]:
    """Every preset of the SoundFonts as an instrument candidate or as left out, with the reason.

    Args:
        infos: the SoundFonts' presets (:func:`~.sf2info.read_soundfont`).
        pitches: the pitches asked for; each candidate keeps those within its key range.
        programs: GM programs to keep (None: all); others are counted ``not_selected``.
    Returns:
        (candidates sorted by file name, bank, program; the presets left out, same order).
    """
    wanted = None if programs is None else set(programs)
    asked = sorted(set(int(p) for p in pitches))
    candidates, excluded = [], []
    for info in sorted(infos, key=lambda i: (i.path.name, str(i.path))):
        for preset in info.presets:
            def out(reason: str, detail: str = "") -> None:
                excluded.append(Excluded(info.path, preset.bank, preset.program, preset.name, reason, detail))

            gm = gm_program(preset.program)
            if preset.percussion or _KIT_NAME.search(preset.name):
                out("percussion")
            elif preset.bank == MT32_BANK:
                out("mt32_bank")
            elif gm.family is None:
                out("no_family", f"{gm.name}: {gm.note}")
            elif wanted is not None and preset.program not in wanted:
                out("not_selected")
            else:
                lo, hi = preset.key_range or (1, 0)
                keys = tuple(p for p in asked if lo <= p <= hi)
                if not keys:
                    out("no_keys", f"keys {preset.key_range}")
                    continue
                candidates.append(Candidate(info.path, preset.bank, preset.program, preset.name,
                                            (lo, hi), gm.family, soundfont_source(info.path, gm.source),
                                            keys))
    return candidates, excluded


def assign_names(kept: Sequence[Candidate]) -> list[str]:
    """NSynth's ``<family>_<source>_<NNN>`` for each kept instrument, in the order given.

    NNN counts per family_source from 000 in that order (file name, bank,
    program), so the names are stable for the same SoundFonts and settings.

    Raises:
        UserError: more than 1,000 instruments of one family_source (NSynth's
            names have three digits).
    """
    counts: dict[str, int] = {}
    names = []
    for c in kept:
        key = f"{c.family}_{c.source}"
        index = counts.get(key, 0)
        if index > 999:
            raise UserError(f"more than 1,000 {key} instruments: NSynth's names have three digits "
                            f"(e.g. {key}_999); build from fewer SoundFonts")
        names.append(nsynth.instrument_name(c.family, c.source, index))
        counts[key] = index + 1
    return names
