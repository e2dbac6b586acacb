"""Shared fixtures: a local Ray on 127.0.0.1, and small NSynth-layout folders made on the fly."""
from __future__ import annotations

import os

import numpy as np
import pytest

from sing_ray import nsynth
from sing_ray.nsynth_io import write_examples_json, write_note_wav

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("TQDM_DISABLE", "0")


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the test session, bound to 127.0.0.1, shut down at the end."""
    import ray

    ray.init(address="local", num_cpus=4, include_dashboard=False,
             _node_ip_address="127.0.0.1", logging_level="WARNING")
    yield ray
    ray.shutdown()


def tone(pitch: int, velocity: int, seconds_held: float = 3.0, seed: int = 0) -> np.ndarray:
    """A 4 s int16 note: a harmonic tone at the MIDI pitch, held, then decaying."""
    rng = np.random.default_rng(seed)
    t = np.arange(nsynth.NUM_FRAMES) / nsynth.SAMPLE_RATE
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    wave = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k
               for k in range(1, 4) if f0 * k < nsynth.SAMPLE_RATE / 2)
    env = np.where(t < seconds_held, 1.0, np.exp(-(t - seconds_held) * 8))
    amp = 0.2 + 0.6 * velocity / 127
    return (amp * env * wave / 1.9 * 32767).astype(np.int16)


def make_nsynth(folder, instruments=("guitar_acoustic_000", "flute_synthetic_001"),
                pitches=range(60, 64), velocities=(25, 127)):
    """Write an NSynth-layout folder; returns the examples dict."""
    examples = {}
    for i, inst in enumerate(instruments):
        for p in pitches:
            for v in velocities:
                meta = nsynth.example_metadata(inst, p, v, note=len(examples), instrument=i)
                write_note_wav(folder / "audio" / f"{meta['note_str']}.wav", tone(p, v, seed=len(examples)))
                examples[meta["note_str"]] = meta
    write_examples_json(folder, examples)
    return examples


@pytest.fixture
def nsynth_folder(tmp_path):
    """A small valid NSynth-layout folder: 2 instruments x 4 pitches x 2 velocities."""
    folder = tmp_path / "nsynth"
    make_nsynth(folder)
    return folder
