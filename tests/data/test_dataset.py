"""Opening an ingested dataset: one split as float32 waveforms, vocabulary, cardinalities."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from sing_ray import nsynth
from sing_ray.data import (WAV_COLUMN, load_cardinalities, load_manifest, load_vocabulary,
                           make_note_dataset)
from sing_ray.data.dataset import decode_audio
from sing_ray.data.ingest import ingest
from sing_ray.errors import UserError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, ray_local):
    from conftest import make_nsynth

    root = tmp_path_factory.mktemp("dataset")
    # 3 instruments x 8 pitches: enough pairs that every split gets some notes.
    make_nsynth(root / "nsynth", instruments=("brass_acoustic_001", "mallet_electronic_002",
                                              "string_synthetic_005"),
                pitches=range(50, 58), velocities=(25, 127))
    ingest(str(root / "nsynth"), str(root / "ds"), rows_per_shard=4, progress=False)
    return root


def test_each_split_yields_float32_waveforms_in_range(dataset):
    manifest = load_manifest(str(dataset / "ds"))
    seen = 0
    for split in nsynth.SPLITS:
        rows = make_note_dataset(str(dataset / "ds"), split).take_all()
        assert len(rows) == manifest["splits"][split]["accepted"]
        for row in rows:
            wav = row[WAV_COLUMN]
            assert wav.dtype == np.float32 and wav.shape == (nsynth.NUM_FRAMES,)
            assert -1.0 <= wav.min() and wav.max() <= 1.0
            assert row["split"] == split
            expected, _ = sf.read(dataset / "nsynth" / "audio" / f"{row['note_str']}.wav", dtype="float32")
            np.testing.assert_array_equal(wav, expected)
            assert row["qualities"].shape == (len(nsynth.QUALITIES),)
            seen += 1
    assert seen == manifest["counts"]["accepted"] == 48


def test_batches_carry_metadata_columns(dataset):
    ds = make_note_dataset(str(dataset / "ds"), "train")
    batch = ds.take_batch(3)
    assert batch[WAV_COLUMN].shape == (3, nsynth.NUM_FRAMES) and batch[WAV_COLUMN].dtype == np.float32
    vocab = load_vocabulary(str(dataset / "ds"))
    for name, inst in zip(batch["instrument_str"], batch["instrument"]):
        assert vocab[inst] == name
    assert "audio" not in batch
    assert {"note_str", "pitch", "velocity", "instrument_family", "instrument_source"} <= set(batch)


def test_a_split_read_here_equals_the_ray_data_read(dataset):
    from sing_ray.data.dataset import read_note_split

    columns = ["note_str", "instrument", "pitch", "velocity", WAV_COLUMN]
    for split in nsynth.SPLITS:
        ray_read = sorted(make_note_dataset(str(dataset / "ds"), split).select_columns(columns).take_all(),
                          key=lambda r: r["note_str"])
        here = read_note_split(str(dataset / "ds"), split, columns, rows_per_block=3)
        rows = sorted(here.take_all(), key=lambda r: r["note_str"])
        assert [r["note_str"] for r in rows] == [r["note_str"] for r in ray_read] and rows, split
        for a, b in zip(rows, ray_read):
            assert set(a) == set(columns)
            assert (a["instrument"], a["pitch"], a["velocity"]) == (b["instrument"], b["pitch"], b["velocity"])
            assert a[WAV_COLUMN].dtype == np.float32
            np.testing.assert_array_equal(a[WAV_COLUMN], b[WAV_COLUMN])
    with pytest.raises(UserError, match="unknown split"):
        read_note_split(str(dataset / "ds"), "dev")


def test_vocabulary_and_cardinalities(dataset):
    assert load_vocabulary(str(dataset / "ds")) == [
        "brass_acoustic_001", "mallet_electronic_002", "string_synthetic_005"]
    card = load_cardinalities(str(dataset / "ds"))
    assert card["instrument"] == 3 and card["pitch"] == 128 and card["velocity"] == 5
    assert card["instrument_family"] == 11 and card["instrument_source"] == 3


def test_unfinished_folder_is_not_a_dataset(dataset, tmp_path):
    with pytest.raises(UserError, match="no _SUCCESS"):
        (tmp_path / "half").mkdir()
        load_manifest(str(tmp_path / "half"))
    with pytest.raises(UserError, match="unknown split"):
        make_note_dataset(str(dataset / "ds"), "dev")


def test_decode_audio_scales_int16_exactly():
    import pyarrow as pa

    samples = np.array([[-32768, 0, 32767] + [0] * (nsynth.NUM_FRAMES - 3)], dtype="<i2")
    wav = decode_audio(pa.array([samples.tobytes()], type=pa.binary()))
    assert wav.dtype == np.float32
    assert wav[0, 0] == -1.0 and wav[0, 1] == 0.0 and wav[0, 2] == np.float32(32767 / 32768)
    with pytest.raises(ValueError, match="128000 bytes"):
        decode_audio(pa.array([b"\x00\x01"], type=pa.binary()))
