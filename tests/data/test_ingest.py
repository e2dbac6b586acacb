"""NSynth-layout folder -> Parquet dataset: bad input, reconciliation, splits, re-runs, strict mode."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from conftest import make_nsynth, tone
from sing_ray import nsynth
from sing_ray.cli import main as cli_main
from sing_ray.data.ingest import ingest
from sing_ray.errors import UserError, ValidationError
from sing_ray.nsynth_io import write_examples_json, write_note_wav

GOOD_INSTRUMENT = "guitar_acoustic_000"


def _meta(instrument: str, pitch: int, velocity: int) -> dict:
    return nsynth.example_metadata(instrument, pitch, velocity, note=0, instrument=0)


def _write(folder: Path, examples: dict) -> None:
    write_examples_json(folder, examples)


def _read_notes(dataset: Path):
    return pq.read_table(sorted((dataset / "notes").glob("part-*.parquet"))).sort_by("note_str")


def _leftovers(parent: Path) -> list[str]:
    """Hidden staging folders that a failed ingest might leave beside its output."""
    return [p.name for p in parent.iterdir() if p.name.startswith(".") and ".ingest-" in p.name]


# One bad note per case: (instrument, pitch, velocity) of the note, how to spoil it,
# a fragment of the reason rejects.parquet must give, and whether its metadata is sane.
def _audio(folder, meta, data, rate=16000, subtype="PCM_16", fmt="WAV"):
    path = folder / "audio" / f"{meta['note_str']}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate, subtype=subtype, format=fmt)


def _spoil_missing(folder, meta):
    pass  # listed in examples.json, no WAV written


def _spoil_garbage(folder, meta):
    (folder / "audio" / f"{meta['note_str']}.wav").write_bytes(b"this is not a RIFF file" * 100)


def _spoil_stereo(folder, meta):
    _audio(folder, meta, np.zeros((nsynth.NUM_FRAMES, 2), dtype=np.int16))


def _spoil_rate(folder, meta):
    _audio(folder, meta, np.zeros(nsynth.NUM_FRAMES, dtype=np.int16), rate=44100)


def _spoil_float(folder, meta):
    _audio(folder, meta, np.zeros(nsynth.NUM_FRAMES, dtype=np.float32), subtype="FLOAT")


def _spoil_24bit(folder, meta):
    _audio(folder, meta, np.zeros(nsynth.NUM_FRAMES, dtype=np.int32), subtype="PCM_24")


def _spoil_short(folder, meta):
    _audio(folder, meta, np.zeros(32000, dtype=np.int16))


def _spoil_truncated(folder, meta):
    path = folder / "audio" / f"{meta['note_str']}.wav"
    write_note_wav(path, tone(60, 100))
    path.write_bytes(path.read_bytes()[:50_000])  # the header still claims 64,000 frames


def _spoil_flac(folder, meta):
    _audio(folder, meta, np.zeros(nsynth.NUM_FRAMES, dtype=np.int16), fmt="FLAC")


def _spoil_meta(change):
    def spoil(folder, meta):
        write_note_wav(folder / "audio" / f"{meta['note_str']}.wav", tone(60, 100))
        change(meta)
    return spoil


BAD_CASES = {
    # name: (pitch, velocity, spoil, reason fragment, metadata sane)
    "missing_wav": (70, 25, _spoil_missing, "audio/guitar_acoustic_000-070-025.wav: file not found", True),
    "unreadable_wav": (70, 50, _spoil_garbage, "unreadable", True),
    "stereo": (70, 75, _spoil_stereo, "2 channels, expected mono", True),
    "sample_rate": (70, 100, _spoil_rate, "audio/guitar_acoustic_000-070-100.wav: 44100 Hz, expected 16000", True),
    "float_samples": (70, 127, _spoil_float, "FLOAT samples, expected 16-bit PCM", True),
    "24_bit": (71, 25, _spoil_24bit, "PCM_24 samples, expected 16-bit PCM", True),
    "too_short": (71, 50, _spoil_short, "32000 frames, expected 64000", True),
    "truncated": (71, 75, _spoil_truncated, "frames", True),
    "not_wav": (71, 100, _spoil_flac, "FLAC file, expected WAV", True),
    "pitch_range": (72, 25, _spoil_meta(lambda m: m.update(pitch=200)), "examples.json: ", False),
    "velocity": (72, 50, _spoil_meta(lambda m: m.update(velocity=30)), "velocity 30 is not one of", False),
    "missing_field": (72, 75, _spoil_meta(lambda m: m.pop("qualities")), "lacks field(s) qualities", False),
    "wrong_type": (72, 100, _spoil_meta(lambda m: m.update(pitch="72")), "expected an integer", False),
    "name_mismatch": (72, 127, _spoil_meta(lambda m: m.update(note_str="guitar_acoustic_000-072-100")),
                      "differs from its key", False),
    "fields_mismatch": (73, 25, _spoil_meta(lambda m: m.update(instrument_str="guitar_acoustic_001")),
                        "does not match its fields", False),
}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, ray_local):
    """A folder of 16 good notes, one bad note per case, one unlisted WAV; ingested once."""
    root = tmp_path_factory.mktemp("mixed")
    source = root / "nsynth"
    examples = make_nsynth(source)
    for pitch, velocity, spoil, _, _ in BAD_CASES.values():
        meta = _meta(GOOD_INSTRUMENT, pitch, velocity)
        key = meta["note_str"]
        spoil(source, meta)
        examples[key] = meta
    examples["not_an_object-000-000"] = ["a", "list"]
    _write(source, examples)
    write_note_wav(source / "audio" / "flute_synthetic_009-060-100.wav", tone(60, 100))
    summary = ingest(str(source), str(root / "ds"), rows_per_shard=5, progress=False)
    rejects = {r["note_str"]: r for r in pq.read_table(root / "ds" / "rejects.parquet").to_pylist()}
    return {"source": source, "out": root / "ds", "summary": summary, "rejects": rejects,
            "examples": examples}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_note_is_rejected_with_its_reason(mixed, case):
    pitch, velocity, _, fragment, _ = BAD_CASES[case]
    note_str = nsynth.format_note_str(GOOD_INSTRUMENT, pitch, velocity)
    assert note_str in mixed["rejects"], f"{case}: {note_str} not in rejects.parquet"
    row = mixed["rejects"][note_str]
    assert fragment in row["reason"], row["reason"]
    assert row["path"].endswith(f"audio/{note_str}.wav")
    accepted = set(_read_notes(mixed["out"]).column("note_str").to_pylist())
    assert note_str not in accepted


def test_entry_that_is_not_an_object_is_rejected(mixed):
    assert "expected an object" in mixed["rejects"]["not_an_object-000-000"]["reason"]


def test_counts_reconcile_overall_and_per_split(mixed):
    s = mixed["summary"]
    assert s.listed == len(mixed["examples"]) == 16 + len(BAD_CASES) + 1
    assert s.accepted == 16 and s.rejected == len(BAD_CASES) + 1
    assert s.reconciles()
    for split, c in s.splits.items():
        assert c["listed"] == c["accepted"] + c["rejected"], split
    # Rejected notes with sane metadata keep their split; the others are "unknown".
    insane = sum(1 for case in BAD_CASES.values() if not case[4]) + 1
    assert s.splits["unknown"] == {"listed": insane, "accepted": 0, "rejected": insane}
    manifest = json.loads((mixed["out"] / "manifest.json").read_text())
    assert manifest["splits"] == s.splits
    assert manifest["counts"] == {"listed": s.listed, "accepted": 16, "rejected": s.rejected,
                                  "unlisted_wavs": 1}
    assert manifest["rejects"] == s.rejected == pq.read_metadata(mixed["out"] / "rejects.parquet").num_rows
    per_split = {}
    for shard in manifest["shards"]:
        per_split[shard["split"]] = per_split.get(shard["split"], 0) + shard["num_rows"]
    assert per_split == {k: v["accepted"] for k, v in s.splits.items() if v["accepted"]}
    assert "16 accepted" in s.format() and "DOES NOT RECONCILE" not in s.format()


def test_unlisted_wavs_are_reported_not_counted_as_notes(mixed):
    manifest = json.loads((mixed["out"] / "manifest.json").read_text())
    assert mixed["summary"].unlisted_wavs == 1
    assert manifest["unlisted_wavs"] == ["flute_synthetic_009-060-100.wav"]
    assert "flute_synthetic_009-060-100" not in mixed["rejects"]


def test_rows_hold_the_wav_samples_and_dense_ids(mixed):
    table = _read_notes(mixed["out"])
    manifest = json.loads((mixed["out"] / "manifest.json").read_text())
    vocab = manifest["instruments"]
    assert vocab == ["flute_synthetic_001", "guitar_acoustic_000"]
    assert manifest["cardinalities"]["instrument"] == 2
    for row in table.to_pylist():
        assert row["instrument"] == vocab.index(row["instrument_str"])
        assert row["split"] == nsynth.split_of(row["instrument_str"], row["pitch"], manifest["split"]["seed"])
        samples, rate = sf.read(mixed["source"] / "audio" / f"{row['note_str']}.wav", dtype="int16")
        assert rate == 16000
        assert np.array_equal(np.frombuffer(row["audio"], dtype="<i2"), samples)
    assert manifest["examples_sha256"] and (mixed["out"] / "_SUCCESS").exists()


def test_shards_are_sorted_single_split_and_sized(mixed):
    manifest = json.loads((mixed["out"] / "manifest.json").read_text())
    for shard in manifest["shards"]:
        table = pq.read_table(mixed["out"] / shard["path"])
        names = table.column("note_str").to_pylist()
        assert names == sorted(names)
        assert set(table.column("split").to_pylist()) == {shard["split"]}
        assert 1 <= table.num_rows == shard["num_rows"] <= 5


def test_no_pair_in_two_splits(tmp_path, ray_local):
    source = tmp_path / "nsynth"
    make_nsynth(source, instruments=("bass_electronic_000", "organ_acoustic_004", "reed_synthetic_002"),
                pitches=range(40, 52), velocities=(25, 75, 127))
    ingest(str(source), str(tmp_path / "ds"), rows_per_shard=7, progress=False)
    table = _read_notes(tmp_path / "ds")
    splits: dict[tuple[str, int], set[str]] = {}
    for row in table.select(["instrument_str", "pitch", "split"]).to_pylist():
        splits.setdefault((row["instrument_str"], row["pitch"]), set()).add(row["split"])
    assert len(splits) == 36 and all(len(s) == 1 for s in splits.values())


def test_split_and_rows_do_not_move_with_shard_counts(nsynth_folder, tmp_path, ray_local):
    ingest(str(nsynth_folder), str(tmp_path / "a"), rows_per_shard=1, progress=False)
    ingest(str(nsynth_folder), str(tmp_path / "b"), rows_per_shard=1000, progress=False)
    a, b = _read_notes(tmp_path / "a"), _read_notes(tmp_path / "b")
    assert len(list((tmp_path / "a" / "notes").iterdir())) == 16
    assert len(list((tmp_path / "b" / "notes").iterdir())) <= 3
    assert a.equals(b)


def test_rerun_refuses_without_overwrite_and_is_identical_with_it(nsynth_folder, tmp_path, ray_local):
    out = tmp_path / "ds"
    ingest(str(nsynth_folder), str(out), rows_per_shard=3, progress=False)
    before = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    with pytest.raises(UserError, match="already exists there; pass --overwrite") as err:
        ingest(str(nsynth_folder), str(out), rows_per_shard=3, progress=False)
    assert err.value.exit_code == 2
    ingest(str(nsynth_folder), str(out), rows_per_shard=3, overwrite=True, progress=False)
    after = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert before.keys() == after.keys() and before == after
    assert not _leftovers(tmp_path)


def test_overwrite_never_replaces_a_folder_that_is_not_a_dataset(nsynth_folder, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(UserError, match="not a sing-ray dataset"):
        ingest(str(nsynth_folder), str(out), overwrite=True, progress=False)
    assert (out / "thesis.tex").read_text() == "years of work"


@pytest.mark.parametrize("content, needle", [
    (b"{\"a\": ", "not valid JSON"),
    (b"[1, 2, 3]", "the top level is an array"),
    (b"{}", "lists no notes"),
    (b"\xff\xfe\x00", "not UTF-8"),
])
def test_malformed_examples_json_is_one_clear_error(nsynth_folder, tmp_path, content, needle, capsys):
    (nsynth_folder / "examples.json").write_bytes(content)
    out = tmp_path / "ds"
    code = cli_main(["data", "ingest", "--source", str(nsynth_folder), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and "examples.json" in err
    assert err.count("\n") == 1, err  # one line, no traceback
    assert not out.exists() and not _leftovers(tmp_path)


def test_missing_examples_json_and_missing_audio_folder(nsynth_folder, tmp_path):
    (nsynth_folder / "audio").rename(nsynth_folder / "sounds")
    with pytest.raises(UserError, match=r"audio: missing") as err:
        ingest(str(nsynth_folder), str(tmp_path / "ds"), progress=False)
    assert err.value.exit_code == 2
    (nsynth_folder / "examples.json").unlink()
    with pytest.raises(UserError, match="examples.json: not found"):
        ingest(str(nsynth_folder), str(tmp_path / "ds"), progress=False)
    with pytest.raises(UserError, match="no such folder"):
        ingest(str(tmp_path / "nowhere"), str(tmp_path / "ds"), progress=False)
    assert not (tmp_path / "ds").exists()


def test_strict_stops_at_the_first_bad_wav(nsynth_folder, tmp_path, ray_local, capsys):
    bad = "guitar_acoustic_000-061-127"
    sf.write(str(nsynth_folder / "audio" / f"{bad}.wav"), np.zeros(nsynth.NUM_FRAMES, np.int16),
             44100, subtype="PCM_16")
    out = tmp_path / "ds"
    code = cli_main(["data", "ingest", "--source", str(nsynth_folder), "--out", str(out),
                     "--strict", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{bad}: audio/{bad}.wav: 44100 Hz, expected 16000" in err
    assert not out.exists() and not _leftovers(tmp_path)


def test_strict_stops_at_bad_metadata(nsynth_folder, tmp_path, ray_local):
    examples = json.loads((nsynth_folder / "examples.json").read_text())
    examples["guitar_acoustic_000-060-025"]["velocity"] = 26
    _write(nsynth_folder, examples)
    with pytest.raises(ValidationError, match="guitar_acoustic_000-060-025: examples.json: ") as err:
        ingest(str(nsynth_folder), str(tmp_path / "ds"), strict=True, progress=False)
    assert err.value.exit_code == 1
    assert not (tmp_path / "ds").exists() and not _leftovers(tmp_path)


def test_strict_stops_before_ray_at_an_entry_that_cannot_be_placed(nsynth_folder, tmp_path):
    examples = json.loads((nsynth_folder / "examples.json").read_text())
    examples["guitar_acoustic_000-060-025"] = "not an object"
    _write(nsynth_folder, examples)
    with pytest.raises(ValidationError, match="guitar_acoustic_000-060-025: examples.json: metadata is a str"):
        ingest(str(nsynth_folder), str(tmp_path / "ds"), strict=True, progress=False)
    assert not (tmp_path / "ds").exists()


def test_ids_stay_dense_when_an_instrument_loses_every_note(tmp_path, ray_local):
    source = tmp_path / "nsynth"
    make_nsynth(source, instruments=("bass_synthetic_009", "guitar_acoustic_000", "vocal_acoustic_003"),
                pitches=(60, 61), velocities=(50, 127))
    for wav in (source / "audio").glob("bass_synthetic_009-*.wav"):
        sf.write(str(wav), np.zeros(nsynth.NUM_FRAMES, np.int16), 22050, subtype="PCM_16")
    summary = ingest(str(source), str(tmp_path / "ds"), rows_per_shard=3, progress=False)
    assert (summary.accepted, summary.rejected) == (8, 4)
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["instruments"] == ["guitar_acoustic_000", "vocal_acoustic_003"]
    table = _read_notes(tmp_path / "ds")
    for row in table.select(["instrument", "instrument_str"]).to_pylist():
        assert row["instrument"] == manifest["instruments"].index(row["instrument_str"])


def test_pipeline_entry_point(nsynth_folder, tmp_path, ray_local, capsys):
    from pipelines.ingest import main

    code = main(["--source", str(nsynth_folder), "--out", str(tmp_path / "ds"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "16 listed = 16 accepted + 0 rejected" in out and str(tmp_path / "ds") in out
    code = main(["--source", str(nsynth_folder), "--out", str(tmp_path / "ds"), "--no-progress"])
    assert code == 2 and "--overwrite" in capsys.readouterr().err


@pytest.fixture
def s3_endpoint(tmp_path):
    """A moto S3 server on 127.0.0.1 (stopped by signalling its own process group)."""
    import os
    import shutil
    import signal
    import socket
    import subprocess
    import sys
    import time

    import pyarrow.fs as pafs

    server = Path(sys.executable).parent / "moto_server"
    if not server.exists() and shutil.which("moto_server") is None:
        pytest.skip("moto_server (the dev extra's moto[server]) is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([str(server) if server.exists() else "moto_server", "-H", "127.0.0.1",
                             "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    query = f"endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
    fs = None
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                fs, _ = pafs.FileSystem.from_uri(f"s3://testing:testing@bucket?{query}"
                                                 "&allow_bucket_creation=true")
                fs.create_dir("bucket")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.3)
        yield fs, (lambda path: f"s3://testing:testing@bucket/{path}?{query}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_ingest_and_read_through_an_object_store_uri(nsynth_folder, s3_endpoint, ray_local):
    import pyarrow.fs as pafs

    from sing_ray.data import load_manifest, make_note_dataset

    fs, uri = s3_endpoint
    pafs.copy_files(str(nsynth_folder), "bucket/nsynth", source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=fs)
    summary = ingest(uri("nsynth"), uri("ds"), rows_per_shard=5, progress=False)
    assert (summary.listed, summary.accepted, summary.rejected) == (16, 16, 0)
    assert fs.get_file_info("bucket/ds/_SUCCESS").type == pafs.FileType.File
    manifest = load_manifest(uri("ds"))
    assert manifest["source"] == "s3://bucket/nsynth"  # no credentials, no endpoint
    rows = make_note_dataset(uri("ds"), "train").take_all()
    assert len(rows) == manifest["splits"]["train"]["accepted"] > 0
    assert rows[0]["wav"].shape == (nsynth.NUM_FRAMES,)
    with pytest.raises(UserError, match="already exists there"):
        ingest(uri("nsynth"), uri("ds"), progress=False)


def test_group_shards_balances_notes_and_keeps_every_shard_once():
    from sing_ray.data.ingest import group_shards

    shards = [(f"notes/part-train-{i:05d}.parquet", "train", list(range(n)))
              for i, n in enumerate([512] * 7 + [118, 425, 385])]
    groups = group_shards(shards, 4)
    assert len(groups) == 4
    flat = [s[0] for g in groups for s in g]
    assert sorted(flat) == sorted(s[0] for s in shards) and len(flat) == len(shards)
    loads = [sum(len(s[2]) for s in g) for g in groups]
    assert max(loads) - min(loads) <= 512
    assert all([s[0] for s in g] == sorted(s[0] for s in g) for g in groups)
    assert len(group_shards(shards[:3], 8)) == 3  # never more groups than shards
