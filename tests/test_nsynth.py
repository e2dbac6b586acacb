"""NSynth metadata and the leak-free split (pure functions, no Ray, no WAVs)."""
from __future__ import annotations

import copy
from collections import Counter

import pytest

from sing_ray import nsynth


def pairs(num_instruments: int = 60):
    """(instrument, pitch) pairs over NSynth's pitch range: 60 x 88 = 5,280 pairs."""
    names = [nsynth.instrument_name(nsynth.FAMILIES[i % 11], nsynth.SOURCES[i % 3], i)
             for i in range(num_instruments)]
    return [(name, pitch) for name in names for pitch in range(21, 109)]


def test_split_ratios_are_near_10_10_80():
    counts = Counter(nsynth.split_of(inst, pitch) for inst, pitch in pairs())
    total = sum(counts.values())
    # Binomial standard deviation at p=0.1 over 5,280 pairs is 0.004: 0.02 is 5 of them.
    assert abs(counts["valid"] / total - 0.10) < 0.02
    assert abs(counts["test"] / total - 0.10) < 0.02
    assert abs(counts["train"] / total - 0.80) < 0.02


def test_split_is_a_function_of_the_pair_and_seed_only():
    every = pairs(10)
    first = [nsynth.split_of(i, p) for i, p in every]
    # Order of evaluation (as with shards or workers) does not matter.
    again = {(i, p): nsynth.split_of(i, p) for i, p in reversed(every)}
    assert first == [again[pair] for pair in every]
    other_seed = [nsynth.split_of(i, p, seed=1) for i, p in every]
    assert other_seed != first, "the seed must change the assignment"
    assert set(other_seed) == set(nsynth.SPLITS)


def test_no_pair_in_two_splits_over_velocities():
    seen: dict[tuple[str, int], set[str]] = {}
    for inst, pitch in pairs(20):
        for velocity in nsynth.VELOCITIES:
            meta = nsynth.example_metadata(inst, pitch, velocity, note=0, instrument=0)
            split = nsynth.split_of(meta["instrument_str"], meta["pitch"])
            seen.setdefault((inst, pitch), set()).add(split)
    assert all(len(s) == 1 for s in seen.values())


def test_split_fractions_follow_arguments():
    counts = Counter(nsynth.split_of(i, p, valid_fraction=0.3, test_fraction=0.2) for i, p in pairs())
    total = sum(counts.values())
    assert abs(counts["valid"] / total - 0.3) < 0.03
    assert abs(counts["test"] / total - 0.2) < 0.03


def test_note_str_round_trip():
    name = nsynth.format_note_str("guitar_acoustic_010", 60, 100)
    assert name == "guitar_acoustic_010-060-100"
    assert nsynth.parse_note_str(name) == ("guitar_acoustic_010", 60, 100)
    with pytest.raises(ValueError):
        nsynth.parse_note_str("guitar-60-100")


def test_example_metadata_is_valid_and_complete():
    meta = nsynth.example_metadata("keyboard_electronic_003", 64, 75, note=7, instrument=3,
                                   qualities=[1, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    assert set(meta) == set(nsynth.FIELDS)
    assert nsynth.validate_metadata(meta["note_str"], meta) is None
    assert meta["qualities_str"] == ["bright", "tempo-synced"]
    assert meta["instrument_family_str"] == "keyboard" and meta["instrument_source"] == 1


def _good():
    return nsynth.example_metadata("flute_synthetic_001", 60, 127, note=0, instrument=1)


@pytest.mark.parametrize("change, needle", [
    (lambda m: m.pop("pitch"), "lacks field(s) pitch"),
    (lambda m: m.update(pitch="60"), "field pitch is '60', expected an integer"),
    (lambda m: m.update(velocity=True), "field velocity is True, expected an integer"),
    (lambda m: m.update(pitch=130, note_str="flute_synthetic_001-130-127"), "pitch 130 outside 0-127"),
    (lambda m: m.update(velocity=30, note_str="flute_synthetic_001-060-030"), "velocity 30 is not one of"),
    (lambda m: m.update(sample_rate=44100), "sample_rate 44100"),
    (lambda m: m.update(note_str="flute_synthetic_001-061-127"), "differs from its key"),
    (lambda m: m.update(instrument_family_str="kazoo"), "not an NSynth family"),
    (lambda m: m.update(instrument_family=0), "instrument_family 0 does not match"),
    (lambda m: m.update(qualities=[0, 1]), "qualities must be 10 flags"),
])
def test_validate_metadata_names_the_problem(change, needle):
    meta = copy.deepcopy(_good())
    key = meta["note_str"]
    change(meta)
    if "differs" not in needle:
        key = meta.get("note_str", key)  # examples.json keys each entry by its own note_str
    reason = nsynth.validate_metadata(key, meta)
    assert reason is not None and needle in reason, reason


def test_validate_metadata_rejects_non_objects_and_mismatched_names():
    assert "expected an object" in nsynth.validate_metadata("x", [1, 2])
    meta = _good()
    meta["instrument_str"] = "flute_synthetic_002"
    assert "does not match its fields" in nsynth.validate_metadata(meta["note_str"], meta)


def test_build_vocabulary_is_sorted_and_distinct():
    assert nsynth.build_vocabulary(["b_acoustic_001", "a_synthetic_000", "b_acoustic_001"]) == [
        "a_synthetic_000", "b_acoustic_001"]


def test_velocity_index():
    assert [nsynth.velocity_index(v) for v in nsynth.VELOCITIES] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="not one of"):
        nsynth.velocity_index(30)
