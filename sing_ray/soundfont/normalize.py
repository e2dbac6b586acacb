"""Per-instrument loudness normalisation of a SoundFont build (``--normalize-rms``).

One gain per program puts the median RMS of its notes at the target, so the
differences between its velocities and pitches stay as the SoundFont made them;
the build records each program's gain in ``soundfont.json``, so that a later
build scales notes from their recorded gain, or renders them again.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..nsynth_io import write_note_wav
from .gm import INSTRUMENT_NAMES
from .notes import NoteSpec, level_dbfs, to_pcm16, wav_path

# Per-instrument loudness normalisation (``normalize_rms_dbfs``): one gain per
# program puts the median RMS of its notes at the target, so the differences
# between its velocities and pitches stay as the SoundFont made them; where
# that gain would take a note's peak over this ceiling, the gain is lowered.
NORMALIZE_PEAK_DBFS = -1.0
NORMALIZE_RANGE_DBFS = (-60.0, -3.0)


@dataclass
class PreviousNormalization:
    """What an earlier build of a folder did to its files (its soundfont.json)."""

    gains: dict[int, float] = field(default_factory=dict)   # gain in dB per scaled program
    pending: set[int] = field(default_factory=set)          # programs whose scaling was cut short
    target_dbfs: float | None = None
    peak_limited: list[int] = field(default_factory=list)


def previous_normalization(out: Path) -> PreviousNormalization:
    try:
        info = json.loads((out / "soundfont.json").read_text())
    except (OSError, ValueError):
        return PreviousNormalization()
    norm = info.get("normalization") or {}
    return PreviousNormalization(gains={int(p): float(g) for p, g in (norm.get("gains_db") or {}).items()},
                                 pending={int(p) for p in norm.get("pending", ())},
                                 target_dbfs=norm.get("target_rms_dbfs"),
                                 peak_limited=[int(p) for p in norm.get("peak_limited", ())])


def settled_programs(out: Path, previous: PreviousNormalization, kept: Sequence[NoteSpec],
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
