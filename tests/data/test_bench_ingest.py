"""The ingest benchmark: both sides do the same work and write the same shards."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from sing_ray.cli import main as cli_main
from sing_ray.data.bench import _same_files, make_synthetic_nsynth, plain_ingest, run_bench
from sing_ray.data.ingest import ingest, list_source
from sing_ray.data.storage import resolve


def test_synthetic_folder_is_valid_nsynth(tmp_path):
    make_synthetic_nsynth(tmp_path / "src", 450)
    listing = list_source(resolve(str(tmp_path / "src")))
    assert listing.listed == 450 and not listing.rejects and not listing.unlisted
    examples = json.loads((tmp_path / "src" / "examples.json").read_text())
    assert len({m["instrument_str"] for m in examples.values()}) == 2  # 440 notes per instrument


def test_linked_synthetic_folder_lists_every_note_but_stores_k_instruments(tmp_path):
    import os

    make_synthetic_nsynth(tmp_path / "src", 3 * 440 + 5, distinct_instruments=1)
    listing = list_source(resolve(str(tmp_path / "src")))
    assert listing.listed == 3 * 440 + 5 and not listing.rejects and not listing.unlisted
    wavs = sorted((tmp_path / "src" / "audio").glob("*.wav"))
    assert len(wavs) == 3 * 440 + 5
    inodes = {os.stat(w).st_ino for w in wavs}
    assert len(inodes) == 440  # the second to fourth instruments are links to the first's files
    with pytest.raises(ValueError, match="distinct_instruments"):
        make_synthetic_nsynth(tmp_path / "bad", 10, distinct_instruments=0)


def test_plain_loop_matches_sing_ray_byte_for_byte(tmp_path, ray_local):
    result = run_bench(num_notes=30, rows_per_shard=8, work_dir=str(tmp_path), repeats=2)
    assert result.identical_shards
    assert result.num_notes == 30 and len(result.plain_runs) == len(result.ray_runs) == 2
    assert min(result.plain_runs) <= result.plain_seconds <= max(result.plain_runs)
    assert result.ratio == pytest.approx(result.plain_seconds / result.ray_seconds)
    assert "ratio" in result.format() and "median of 2 run(s)" in result.format()


def test_both_sides_write_the_same_flac_shards(tmp_path, ray_local):
    from sing_ray.data.dataset import decode_audio

    result = run_bench(num_notes=12, rows_per_shard=8, work_dir=str(tmp_path), repeats=1, audio="flac",
                       keep=True)
    assert result.identical_shards
    shard = sorted((tmp_path / "sing-ray" / "notes").glob("*.parquet"))[0]
    audio = pq.read_table(shard, columns=["audio"]).column("audio")
    assert audio[0].as_py()[:4] == b"fLaC" and decode_audio(audio, "flac").shape[1] == 64000


def test_plain_loop_rejects_and_renumbers_like_ingest(tmp_path, ray_local):
    from conftest import make_nsynth

    source = tmp_path / "src"
    make_nsynth(source, instruments=("bass_synthetic_009", "guitar_acoustic_000"), pitches=(60, 61),
                velocities=(25, 127))
    # Every note of the first instrument fails its WAV check: both must renumber ids.
    for wav in (source / "audio").glob("bass_synthetic_009-*.wav"):
        wav.write_bytes(b"not audio")
    counts = plain_ingest(str(source), str(tmp_path / "plain"), rows_per_shard=3)
    assert counts == {"listed": 8, "accepted": 4, "rejected": 4}
    ingest(str(source), str(tmp_path / "ray"), rows_per_shard=3, progress=False)
    assert _same_files(tmp_path / "plain", tmp_path / "ray")
    ids = pq.read_table(tmp_path / "plain" / "notes").column("instrument").to_pylist()
    assert set(ids) == {0}


def test_bench_command(tmp_path, ray_local, capsys):
    code = cli_main(["bench", "ingest", "--num-notes", "12", "--rows-per-shard", "4",
                     "--work-dir", str(tmp_path), "--repeats", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "plain loop" in out and "sing-ray" in out and "notes/s" in out and "shards identical: yes" in out


def test_control_run_times_the_plain_loop_on_both_sides(tmp_path, ray_local, monkeypatch):
    import sing_ray.data.bench as bench

    def no_ray(*args, **kwargs):
        raise AssertionError("a control run must not call sing-ray's ingest")

    monkeypatch.setattr(bench, "ingest", no_ray)
    monkeypatch.setattr(bench, "_warm_up", lambda *a: None)
    result = run_bench(num_notes=12, rows_per_shard=4, work_dir=str(tmp_path), repeats=2, control=True)
    assert result.control and result.identical_shards and len(result.ray_runs) == 2
    assert "plain (B)" in result.format() and "sing-ray" not in result.format()
