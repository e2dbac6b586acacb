"""ParquetNoteWriter: notes straight into the ingested layout; checks, counts, resume after a kill."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import tone
from sing_ray import nsynth
from sing_ray.data.dataset import load_manifest, make_note_dataset, read_note_split, read_split_metadata
from sing_ray.data.direct import ParquetNoteWriter
from sing_ray.errors import UserError

INSTRUMENTS = ("guitar_acoustic_000", "flute_synthetic_001", "organ_electronic_002")
REPO = Path(__file__).resolve().parents[2]


def _notes(instruments=INSTRUMENTS[:2], pitches=range(60, 66), velocities=(25, 127)):
    for i, inst in enumerate(instruments):
        for p in pitches:
            for v in velocities:
                meta = nsynth.example_metadata(inst, p, v, note=0, instrument=i)
                yield meta, tone(p, v, seed=p * 7 + v)


def _rows(out: Path):
    tables = [pq.read_table(p) for p in sorted((out / "notes").glob("part-*.parquet"))]
    return [r for t in tables for r in t.select(["note_str", "instrument", "instrument_str"]).to_pylist()]


def test_counts_reconcile_and_rejects_keep_their_reasons(tmp_path, ray_local):
    out = tmp_path / "ds"
    writer = ParquetNoteWriter(str(out), INSTRUMENTS, rows_per_shard=5, source="test-fonts")
    samples = {}
    for meta, pcm in _notes():
        writer.add(meta, pcm)
        samples[meta["note_str"]] = pcm
    base = nsynth.example_metadata(INSTRUMENTS[0], 70, 25, note=0, instrument=0)
    writer.add(base, tone(70, 25).astype(np.float32))                                    # float samples
    writer.add(nsynth.example_metadata(INSTRUMENTS[0], 71, 25, note=0, instrument=0), tone(71, 25)[:32000])
    writer.add(nsynth.example_metadata(INSTRUMENTS[0], 72, 25, note=0, instrument=0),
               np.stack([tone(72, 25)] * 2))                                             # stereo
    writer.add({**nsynth.example_metadata(INSTRUMENTS[0], 73, 25, note=0, instrument=0), "velocity": 30},
               tone(73, 25))                                                             # bad metadata
    writer.add(nsynth.example_metadata("bass_synthetic_009", 60, 25, note=0, instrument=0), tone(60, 25))
    writer.reject(nsynth.format_note_str(INSTRUMENTS[0], 74, 25), "render failed: silent output")
    with pytest.raises(ValueError, match="already given"):
        writer.add(*next(_notes()))
    manifest = writer.close()

    assert manifest["counts"] == {"listed": 30, "accepted": 24, "rejected": 6, "unlisted_wavs": 0}
    for c in manifest["splits"].values():
        assert c["listed"] == c["accepted"] + c["rejected"]
    assert manifest["splits"]["unknown"]["rejected"] == 2                 # the two bad entries
    assert manifest["audio"]["encoding"] == "flac" and manifest["source"] == "test-fonts"
    # organ_electronic_002 got no note: the ids are dense over the accepted notes, as ingest's are.
    assert manifest["instruments"] == sorted(INSTRUMENTS[:2])
    assert {(r["instrument_str"], r["instrument"]) for r in _rows(out)} == \
        {(name, i) for i, name in enumerate(sorted(INSTRUMENTS[:2]))}
    reasons = dict(zip(*(pq.read_table(out / "rejects.parquet").column(c).to_pylist()
                         for c in ("note_str", "reason"))))
    assert reasons["guitar_acoustic_000-070-025"] == "audio: float32 samples, expected 16-bit PCM (int16)"
    assert reasons["guitar_acoustic_000-071-025"] == "audio: 32000 frames, expected 64000"
    assert "expected mono" in reasons["guitar_acoustic_000-072-025"]
    assert reasons["guitar_acoustic_000-073-025"].startswith("examples.json: velocity 30")
    assert "not one of the writer's 3 instruments" in reasons["bass_synthetic_009-060-025"]
    assert reasons["guitar_acoustic_000-074-025"] == "render failed: silent output"
    assert not (out / "_rejects").exists() and not (out / "_writer.json").exists()

    # Everything that reads an ingested dataset reads it, bit for bit.
    assert load_manifest(str(out))["shards"] == manifest["shards"]
    seen = []
    for split in nsynth.SPLITS:
        names = read_split_metadata(str(out), split)["note_str"].tolist()
        if not names:
            continue
        # Ray Data reads files in parallel: rows come in no fixed order.
        streamed = sorted(make_note_dataset(str(out), split).take_all(), key=lambda r: r["note_str"])
        here = sorted(read_note_split(str(out), split, ["note_str", "wav"]).take_all(),
                      key=lambda r: r["note_str"])
        assert [r["note_str"] for r in streamed] == [r["note_str"] for r in here] == sorted(names)
        for row in streamed:
            assert row["split"] == split == nsynth.split_of(row["instrument_str"], row["pitch"])
            assert np.array_equal(row["wav"] * 32768, samples[row["note_str"]].astype(np.float32))
        seen += names
    assert sorted(seen) == sorted(samples)


def test_training_plan_accepts_a_direct_dataset(tmp_path):
    from sing_ray.config import load_config
    from sing_ray.train.plan import check_inputs

    out = tmp_path / "ds"
    writer = ParquetNoteWriter(str(out), INSTRUMENTS[:2], audio="pcm")
    for meta, pcm in _notes(pitches=range(40, 70)):
        writer.add(meta, pcm)
    writer.close()
    plan = check_inputs(load_config("tiny"), str(out))
    assert plan.count("train") > 0 and plan.instruments == sorted(INSTRUMENTS[:2])


def test_a_second_writer_finishes_an_interrupted_one(tmp_path, ray_local):
    out = tmp_path / "ds"
    notes = list(_notes())
    first = ParquetNoteWriter(str(out), INSTRUMENTS, rows_per_shard=4)
    first.reject(nsynth.format_note_str(INSTRUMENTS[2], 60, 25), "render failed")
    for meta, pcm in notes[:14]:                # all train notes: 3 shards of 4, 2 left in the buffer
        first.add(meta, pcm)
    del first                                   # never closed: the buffered notes are lost
    assert not (out / "_SUCCESS").exists()

    second = ParquetNoteWriter(str(out), INSTRUMENTS, rows_per_shard=4)
    done = second.done()
    assert done == {m["note_str"] for m, _ in notes[:12]} | {nsynth.format_note_str(INSTRUMENTS[2], 60, 25)}
    for meta, pcm in notes:
        if meta["note_str"] not in done:
            second.add(meta, pcm)
    manifest = second.close()
    names = [r["note_str"] for r in _rows(out)]
    assert sorted(names) == sorted(m["note_str"] for m, _ in notes)          # each exactly once
    assert manifest["counts"] == {"listed": 25, "accepted": 24, "rejected": 1, "unlisted_wavs": 0}

    # A finished dataset reopened with the same settings has nothing left to do.
    third = ParquetNoteWriter(str(out), INSTRUMENTS, rows_per_shard=4)
    assert not (out / "_SUCCESS").exists() and len(third.done()) == 25
    assert third.close()["counts"] == manifest["counts"]


def test_a_writer_killed_midway_is_resumed_with_nothing_lost_or_doubled(tmp_path):
    out, progress = tmp_path / "ds", tmp_path / "progress"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = [{str(REPO / 'tests')!r}, {str(REPO / 'tests' / 'data')!r}]
        from test_direct import _notes, INSTRUMENTS
        from sing_ray.data.direct import ParquetNoteWriter
        w = ParquetNoteWriter({str(out)!r}, INSTRUMENTS, rows_per_shard=2)
        for k, (meta, pcm) in enumerate(_notes(pitches=range(60, 70))):
            if meta["note_str"] in w.done():
                continue
            w.add(meta, pcm)
            open({str(progress)!r}, "w").write(str(k))
            time.sleep(0.05)
        w.close()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script],
                            cwd=REPO, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if progress.exists() and progress.read_text() and int(progress.read_text()) >= 15:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "_SUCCESS").exists(), "the writer finished before it could be killed"
    written = len(_rows(out))
    assert 0 < written < 40

    writer = ParquetNoteWriter(str(out), INSTRUMENTS, rows_per_shard=2)
    assert len(writer.done()) == written
    for meta, pcm in _notes(pitches=range(60, 70)):
        if meta["note_str"] not in writer.done():
            writer.add(meta, pcm)
    manifest = writer.close()
    names = [r["note_str"] for r in _rows(out)]
    assert len(names) == len(set(names)) == 40 == manifest["counts"]["accepted"]


def test_refusals(tmp_path):
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("someone's files")
    with pytest.raises(UserError, match="not a sing-ray dataset"):
        ParquetNoteWriter(str(stranger), INSTRUMENTS)
    out = tmp_path / "ds"
    writer = ParquetNoteWriter(str(out), INSTRUMENTS, audio="flac")
    writer.add(*next(_notes()))
    writer.close()
    with pytest.raises(UserError, match="other audio"):
        ParquetNoteWriter(str(out), INSTRUMENTS, audio="pcm")
    fresh = ParquetNoteWriter(str(out), INSTRUMENTS, audio="pcm", overwrite=True)
    assert fresh.done() == set()
    with pytest.raises(UserError, match="no note was accepted"):
        fresh.close()
    with pytest.raises(UserError, match="unknown audio choice"):
        ParquetNoteWriter(str(tmp_path / "x"), INSTRUMENTS, audio="mp3")
