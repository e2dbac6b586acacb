"""Fixtures of the training tests: a few dozen synthetic notes, ingested once per session."""
from __future__ import annotations

import pytest

from sing_ray import nsynth
from sing_ray.nsynth_io import write_examples_json, write_note_wav

INSTRUMENTS = ("guitar_acoustic_000", "flute_synthetic_001", "keyboard_electronic_002")
VELOCITIES = (25, 127)
PAIRS_PER_SPLIT = {"train": 10, "valid": 2, "test": 2}


def pick_pairs(per_split=PAIRS_PER_SPLIT, instruments=INSTRUMENTS, pitches=range(48, 96)) -> dict:
    """(instrument, pitch) pairs per split, taken in order until each split has its count.

    The split of a pair is the dataset's seeded hash, so choosing pairs this way
    guarantees non-empty valid and test splits in a dataset this small.
    """
    chosen = {s: [] for s in per_split}
    for pitch in pitches:
        for inst in instruments:
            split = nsynth.split_of(inst, pitch)
            if len(chosen[split]) < per_split[split]:
                chosen[split].append((inst, pitch))
    missing = {s: n - len(chosen[s]) for s, n in per_split.items() if len(chosen[s]) < n}
    assert not missing, f"not enough pairs for {missing}"
    return chosen


def write_source(folder, per_split=PAIRS_PER_SPLIT) -> dict:
    """An NSynth-layout folder with every velocity of the chosen pairs. Returns the examples."""
    from conftest import tone  # tests/conftest.py: a harmonic tone held, then decaying

    examples = {}
    for split, pairs in pick_pairs(per_split).items():
        for inst, pitch in pairs:
            for velocity in VELOCITIES:
                meta = nsynth.example_metadata(inst, pitch, velocity, note=len(examples),
                                               instrument=INSTRUMENTS.index(inst))
                write_note_wav(folder / "audio" / f"{meta['note_str']}.wav",
                               tone(pitch, velocity, seed=len(examples)))
                examples[meta["note_str"]] = meta
    write_examples_json(folder, examples)
    return examples


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread, as in the Ray workers: on a shared 2-core machine two
    OpenMP threads that wait for each other can make a 30 ms step take seconds."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def train_dataset(tmp_path_factory, ray_local):
    """An ingested dataset: 3 instruments, 14 (instrument, pitch) pairs x 2 velocities = 28 notes."""
    from sing_ray.data.ingest import ingest

    root = tmp_path_factory.mktemp("train-data")
    write_source(root / "nsynth")
    ingest(str(root / "nsynth"), str(root / "notes.ds"), progress=False)
    return str(root / "notes.ds")
