"""The ingest benchmark: both sides do the same work and write the same shards."""
from __future__ import annotations

import json

import pytest

from sing_ray.cli import main as cli_main
from sing_ray.data.bench import make_synthetic_nsynth, plain_ingest, run_bench
from sing_ray.data.ingest import list_source
from sing_ray.data.storage import resolve


def test_synthetic_folder_is_valid_nsynth(tmp_path):
    make_synthetic_nsynth(tmp_path / "src", 450)
    listing = list_source(resolve(str(tmp_path / "src")))
    assert listing.listed == 450 and not listing.rejects and not listing.unlisted
    examples = json.loads((tmp_path / "src" / "examples.json").read_text())
    assert len({m["instrument_str"] for m in examples.values()}) == 2  # 440 notes per instrument


def test_plain_loop_matches_sing_ray_byte_for_byte(tmp_path, ray_local):
    result = run_bench(num_notes=30, rows_per_shard=8, work_dir=str(tmp_path), repeats=2)
    assert result.identical_shards
    assert result.num_notes == 30 and len(result.plain_runs) == len(result.ray_runs) == 2
    assert min(result.plain_runs) <= result.plain_seconds <= max(result.plain_runs)
    assert result.ratio == pytest.approx(result.plain_seconds / result.ray_seconds)
    assert "ratio" in result.format() and "median of 2 run(s)" in result.format()


def test_plain_loop_rejects_like_ingest(tmp_path):
    make_synthetic_nsynth(tmp_path / "src", 12)
    victim = sorted((tmp_path / "src" / "audio").iterdir())[0]
    victim.write_bytes(b"not audio")
    counts = plain_ingest(str(tmp_path / "src"), str(tmp_path / "out"), rows_per_shard=5)
    assert counts == {"listed": 12, "accepted": 11, "rejected": 1}


def test_bench_command(tmp_path, ray_local, capsys):
    code = cli_main(["bench", "ingest", "--num-notes", "12", "--rows-per-shard", "4",
                     "--work-dir", str(tmp_path), "--repeats", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "plain loop" in out and "sing-ray" in out and "notes/s" in out and "shards identical: yes" in out
