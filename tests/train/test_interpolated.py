"""train.sequence_interpolated: the notes between an instrument's trained pitches."""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sing_ray.config import ConfigError, load_config
from sing_ray.train.embeddings import SUCCESS, count_rows, interpolate_pitches, precompute_interpolated

D, F = 3, 5


def _group(pitches, instrument=4, velocity=100, name="guitar_acoustic_000"):
    frames = np.stack([np.full((D, F), float(p), np.float32) + np.arange(F, dtype=np.float32) for p in pitches])
    return {"note_str": np.array([f"{name}-{p:03d}-{velocity:03d}" for p in pitches], dtype=object),
            "instrument": np.full(len(pitches), instrument, np.int64),
            "pitch": np.array(pitches, np.int64), "velocity": np.full(len(pitches), velocity, np.int64),
            "embedding": frames}


def test_each_missing_pitch_is_the_two_neighbours_weighted_by_distance():
    # Out of order, as a group arrives; 64 and 65 are adjacent, so nothing lies between them.
    out = interpolate_pitches(_group([64, 60, 65, 67]))
    assert out["pitch"].tolist() == [61, 62, 63, 66]
    assert out["note_str"].tolist() == ["guitar_acoustic_000-061-100", "guitar_acoustic_000-062-100",
                                        "guitar_acoustic_000-063-100", "guitar_acoustic_000-066-100"]
    assert out["instrument"].tolist() == [4] * 4 and out["velocity"].tolist() == [100] * 4
    assert out["embedding"].shape == (4, D, F) and out["embedding"].dtype == np.float32
    # The frames of pitch p are p + t: linear in pitch, so the interpolation is exact.
    expected = np.stack([np.full((D, F), float(q)) + np.arange(F) for q in (61, 62, 63, 66)])
    np.testing.assert_allclose(out["embedding"], expected, rtol=0, atol=1e-5)


def test_no_gap_gives_no_notes_with_the_right_shapes():
    out = interpolate_pitches(_group([60, 61]))
    assert len(out["pitch"]) == 0 and out["embedding"].shape == (0, D, F)
    assert len(interpolate_pitches(_group([72]))["note_str"]) == 0


def test_the_option_needs_harmonic_frames_and_a_share_of_zero_or_more():
    with pytest.raises(ConfigError, match="harmonic_frames"):
        load_config("tiny", overrides=["train.sequence_interpolated=0.5"])
    with pytest.raises(ConfigError, match="sequence_interpolated must be >= 0"):
        load_config("quick", overrides=["train.sequence_interpolated=-1"])
    assert load_config("quick", overrides=["train.sequence_interpolated=0.5"]).train.sequence_interpolated == 0.5


def _write_embeddings(folder, groups):
    """Files as precompute_embeddings writes them (Ray Data's tensor column, int32 symbols)."""
    import ray.data

    for g in groups:
        rows = [{"note_str": str(g["note_str"][i]), "instrument": np.int32(g["instrument"][i]),
                 "pitch": np.int32(g["pitch"][i]), "velocity": np.int32(g["velocity"][i]),
                 "embedding": g["embedding"][i]} for i in range(len(g["pitch"]))]
        ray.data.from_items(rows).write_parquet(str(folder))


@pytest.mark.slow
def test_ray_data_interpolates_each_instrument_at_each_velocity_apart(tmp_path, ray_local):
    # Two instruments, two velocities, spread over files so that a group spans several.
    a = _group([60, 63], instrument=0, velocity=25, name="bass_synthetic_000")
    b = _group([60, 62, 66], instrument=1, velocity=25, name="flute_acoustic_001")
    c = _group([48, 50], instrument=1, velocity=127, name="flute_acoustic_001")
    first = {k: np.concatenate([a[k][:1], b[k][:2], c[k]]) for k in a}
    second = {k: np.concatenate([a[k][1:], b[k][2:]]) for k in a}
    _write_embeddings(tmp_path / "train", [first, second])
    out, count = precompute_interpolated(tmp_path / "train", tmp_path / "interpolated")
    assert (out / SUCCESS).exists() and count == count_rows(out) == 2 + 1 + 3 + 1
    table = pa.concat_tables([pq.read_table(f) for f in sorted(out.glob("*.parquet"))])
    rows = sorted(zip(table.column("note_str").to_pylist(), table.column("instrument").to_pylist(),
                      table.column("pitch").to_pylist(), table.column("velocity").to_pylist()))
    assert rows == [("bass_synthetic_000-061-025", 0, 61, 25), ("bass_synthetic_000-062-025", 0, 62, 25),
                    ("flute_acoustic_001-049-127", 1, 49, 127), ("flute_acoustic_001-061-025", 1, 61, 25),
                    ("flute_acoustic_001-063-025", 1, 63, 25), ("flute_acoustic_001-064-025", 1, 64, 25),
                    ("flute_acoustic_001-065-025", 1, 65, 25)]
    import ray.data

    for row in ray.data.read_parquet(str(out)).take_all():
        np.testing.assert_allclose(row["embedding"], np.full((D, F), float(row["pitch"])) + np.arange(F), atol=1e-5)
    # A finished folder is reused, not written again.
    stamp = (out / SUCCESS).stat().st_mtime_ns
    assert precompute_interpolated(tmp_path / "train", tmp_path / "interpolated") == (out, count)
    assert (out / SUCCESS).stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_the_sequence_phase_trains_on_the_real_notes_and_the_interpolated_ones(train_dataset, tmp_path):
    import json

    from sing_ray.train import run_pipeline

    cfg = load_config("tiny", overrides=[
        "model.dimension=16", "model.partials=16", "model.analysis_partials=16", "model.harmonic_frames=true",
        "model.conv_synthesis=false", "model.decoder_harmonics=0", "train.loss=spectral + 0.05*loudness",
        "train.autoencoder.epochs=1", "train.sequence.epochs=3", "train.sequence_interpolated=1",
        # and quick's audible term beside the MSE, as the workers build it
        "train.sequence_audible=3",
        "run.num_workers=2", "run.run_name=interp", f"run.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"run.storage_path={tmp_path / 'runs'}"])
    result = run_pipeline(cfg, train_dataset, phases=("autoencoder", "sequence"), register=False)
    folder = result.run_dir / "embeddings" / "interpolated"
    real = count_rows(result.run_dir / "embeddings" / "train")
    assert (folder / SUCCESS).exists()
    count = count_rows(folder)
    assert 0 < count < real, "the test's train split has a few gaps between its pitches"
    epochs = [json.loads(line) for line in (result.run_dir / "progress" / "sequence.jsonl").read_text().splitlines()]
    # A share of 1 draws as many as there are train notes: here all of the fewer interpolated
    # ones, beside every real note, in every epoch.
    assert [e["train_notes"] for e in epochs if e.get("status") == "running"] == [real + count] * 3
    assert all(math.isfinite(e["train_loss"]) and e["train_loss"] > 0 for e in epochs if e.get("status") == "running")


def test_nearest_gives_each_missing_pitch_the_nearer_neighbours_frames_the_upper_half_way():
    out = interpolate_pitches(_group([60, 64, 67]), mode="nearest")
    # 61 is nearer 60; 62 lies half way and takes 64's; 63 and 65 are nearer 64; 66 nearer 67.
    assert out["pitch"].tolist() == [61, 62, 63, 65, 66]
    sources = (60, 64, 64, 64, 67)
    expected = np.stack([np.full((D, F), float(p)) + np.arange(F) for p in sources])
    np.testing.assert_array_equal(out["embedding"], expected.astype(np.float32))
    with pytest.raises(ValueError, match="cubic"):
        interpolate_pitches(_group([60, 64]), mode="cubic")
    with pytest.raises(ConfigError, match="sequence_interpolation"):
        load_config("quick", overrides=["train.sequence_interpolation=cubic"])


def test_edges_stretch_the_lowest_and_highest_keys_as_far_as_the_closest_two_lie_apart():
    out = interpolate_pitches(_group([60, 64, 67]), edges=True)
    # Between, linear as ever; beyond, as far as 67 - 64 = 3: 57 to 59 take 60's frames, 68 to 70 67's.
    assert out["pitch"].tolist() == [61, 62, 63, 65, 66, 57, 58, 59, 68, 69, 70]
    np.testing.assert_allclose(out["embedding"][5:], np.stack(
        [np.full((D, F), float(p)) + np.arange(F) for p in (60, 60, 60, 67, 67, 67)]), rtol=0, atol=1e-6)
    # Not beyond NSynth's 21 to 108; nothing from a single pitch; nothing without edges.
    assert interpolate_pitches(_group([21, 25]), edges=True)["pitch"].tolist() == [22, 23, 24, 26, 27, 28, 29]
    assert len(interpolate_pitches(_group([72]), edges=True)["pitch"]) == 0
    assert interpolate_pitches(_group([60, 64]))["pitch"].tolist() == [61, 62, 63]
