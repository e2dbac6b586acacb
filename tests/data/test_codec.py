"""The audio column's encodings: FLAC and zstd through ingest and every reader, bit for bit."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from conftest import tone
from sing_ray import nsynth
from sing_ray.data.codec import FLAC, PCM, audio_column, decode_int16, encode_flac
from sing_ray.data.dataset import (decode_audio, load_manifest, make_note_dataset, read_note_split,
                                   read_split_metadata)
from sing_ray.data.ingest import ingest
from sing_ray.errors import UserError


def _source_samples(folder, note_str):
    samples, rate = sf.read(folder / "audio" / f"{note_str}.wav", dtype="int16")
    assert rate == nsynth.SAMPLE_RATE
    return samples


@pytest.mark.parametrize("audio, encoding, compression",
                         [("flac", "flac", "none"), ("zstd", "pcm_s16le", "zstd")])
def test_ingest_round_trip_is_bit_identical(nsynth_folder, tmp_path, ray_local, audio, encoding, compression):
    out = tmp_path / f"ds-{audio}"
    summary = ingest(str(nsynth_folder), str(out), rows_per_shard=4, progress=False, audio=audio)
    assert summary.reconciles() and summary.accepted == 16
    manifest = load_manifest(str(out))
    assert manifest["audio"]["encoding"] == encoding and manifest["audio"]["compression"] == compression
    shard = pq.ParquetFile(out / manifest["shards"][0]["path"])
    stored = shard.metadata.row_group(0).column(shard.schema_arrow.get_field_index("audio"))
    assert stored.compression == compression.upper().replace("NONE", "UNCOMPRESSED")
    seen = 0
    for split in nsynth.SPLITS:
        if not manifest["splits"][split]["accepted"]:
            continue
        # Ray Data reads files in parallel: rows come in no fixed order.
        streamed = sorted(make_note_dataset(str(out), split).take_all(), key=lambda r: r["note_str"])
        here = sorted(read_note_split(str(out), split, ["note_str", "wav"]).take_all(),
                      key=lambda r: r["note_str"])
        assert [r["note_str"] for r in streamed] == [r["note_str"] for r in here]
        for row, local in zip(streamed, here):
            expected = _source_samples(nsynth_folder, row["note_str"])
            assert np.array_equal(row["wav"] * 32768, expected.astype(np.float32))
            assert np.array_equal(local["wav"], row["wav"])
        assert len(read_split_metadata(str(out), split)["note_str"]) == len(streamed)
        seen += len(streamed)
    assert seen == 16


def test_flac_is_smaller_and_the_pcm_default_is_unchanged(nsynth_folder, tmp_path, ray_local):
    ingest(str(nsynth_folder), str(tmp_path / "pcm"), progress=False)
    ingest(str(nsynth_folder), str(tmp_path / "flac"), progress=False, audio="flac")
    pcm = pq.read_table(sorted((tmp_path / "pcm" / "notes").glob("*.parquet"))[0])
    flac = pq.read_table(sorted((tmp_path / "flac" / "notes").glob("*.parquet"))[0])
    assert all(len(v) == 128000 for v in pcm.column("audio").to_pylist())
    assert all(v[:4] == b"fLaC" and len(v) < 128000 for v in flac.column("audio").to_pylist())
    assert json.loads((tmp_path / "pcm" / "manifest.json").read_text())["audio"]["encoding"] == "pcm_s16le"


def test_decode_tells_flac_from_pcm_without_the_manifest():
    notes = np.stack([tone(60, 100), tone(72, 25, seed=3)])
    pcm, flac = audio_column(notes, PCM), audio_column(notes, FLAC)
    for column in (pcm, flac):
        assert np.array_equal(decode_int16(column), notes)
        assert np.array_equal(decode_audio(column), notes.astype(np.float32) / 32768)
    assert np.array_equal(decode_int16(flac, FLAC), notes)
    # Extremes and noise survive too (FLAC is lossless).
    edge = np.random.default_rng(0).integers(-32768, 32768, nsynth.NUM_FRAMES).astype(np.int16)
    edge[:2] = (-32768, 32767)
    assert np.array_equal(decode_int16(pa.array([encode_flac(edge)], pa.binary())), edge[None])


def test_a_flac_value_of_another_length_is_an_error():
    short = pa.array([encode_flac(np.zeros(100, np.int16))], pa.binary())
    with pytest.raises(ValueError, match="100 frames"):
        decode_int16(short, FLAC)


def test_unknown_encoding_in_a_manifest_is_refused(nsynth_folder, tmp_path, ray_local):
    out = tmp_path / "ds"
    ingest(str(nsynth_folder), str(out), progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["audio"]["encoding"] = "opus"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="audio encoding 'opus'"):
        load_manifest(str(out))


def test_ingest_refuses_an_unknown_audio_choice(nsynth_folder, tmp_path):
    with pytest.raises(UserError, match="unknown audio choice 'mp3'"):
        ingest(str(nsynth_folder), str(tmp_path / "ds"), progress=False, audio="mp3")
