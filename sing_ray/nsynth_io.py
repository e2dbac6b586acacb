"""Writing NSynth-layout folders: ``examples.json`` plus ``audio/<note_str>.wav``.

Used by the SoundFont builder and by tests that make small NSynth folders.
Files are written under a temporary name and renamed, so an interrupted
writer never leaves a truncated WAV under its final name.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import soundfile as sf

from .nsynth import SAMPLE_RATE


def write_note_wav(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE,
                   subtype: str = "PCM_16") -> None:
    """Write one note atomically. ``audio``: (T,) int16, or float in [-1, 1]."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    sf.write(str(tmp), audio, sample_rate, subtype=subtype, format="WAV")
    os.replace(tmp, path)


def write_examples_json(folder: str | Path, examples: Mapping[str, Mapping]) -> Path:
    """Write ``examples.json`` (keyed by note_str, sorted) atomically."""
    path = Path(folder) / "examples.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".examples.json.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({k: examples[k] for k in sorted(examples)}, indent=1))
    os.replace(tmp, path)
    return path
