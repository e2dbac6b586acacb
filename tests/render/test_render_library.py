"""Rendering a library on a local Ray: notes, manifest, sampler files, page, progress, re-runs and interruptions."""
import hashlib
import json
import logging
import os
import re
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from pipelines import render as render_pipeline
from sing_ray import cli, nsynth
from sing_ray.errors import UserError
from sing_ray.library.dspreset import parse_dspreset
from sing_ray.library.page import note_paths, read_data as read_page_data
from sing_ray.library.sfz import parse_sfz
from sing_ray.data.storage import Location
from sing_ray.render import LIBRARY_KEY, MANIFEST_SCHEMA, TMP_MARK, mix_name, parse_mix, plan_render, render_library

from library.samplers import play_sfz, resampled_correlation
from .conftest import make_checkpoint

MIX = "guitar_acoustic_000:0.7,flute_synthetic_001:0.3"
ARGS = ["--instruments", "guitar_acoustic_000,flute_synthetic_001", "--pitches", "60:64:2", "--velocities", "25,127",
        "--mix", MIX, "--batch-size", "4", "--workers", "1"]


def _notes(out: Path, ext: str = "wav") -> dict[str, int]:
    """Note files of the library (relative path -> mtime_ns)."""
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.glob(f"*/*.{ext}")}


def _library_files(out: Path) -> dict[str, int]:
    """Sampler files and the page (relative path -> mtime_ns)."""
    return {p.name: p.stat().st_mtime_ns for p in out.iterdir()
            if p.suffix in (".sfz", ".dspreset", ".sf2", ".html")}


def _check_manifest_matches_files(out: Path) -> list[dict]:
    table = pq.read_table(out / "manifest.parquet")
    assert table.schema.names == MANIFEST_SCHEMA.names
    rows = table.to_pylist()
    files = set(_notes(out)) | set(_notes(out, "flac"))
    assert {r["path"] for r in rows} == files
    for r in rows:
        data = (out / r["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r["sha256"]
    return rows


def test_render_rerun_and_interruption(ray_local, tiny_sing, tmp_path, caplog, capsys):
    out = tmp_path / "lib"
    caplog.set_level(logging.INFO, logger="sing_ray")
    assert cli.main(["render", "--model", str(tiny_sing), "--out", str(out), *ARGS]) == 0
    mixed = mix_name(parse_mix(MIX))
    notes = _notes(out)
    assert len(notes) == 3 * 3 * 2
    for rel in notes:
        info = sf.info(str(out / rel))
        assert (info.frames, info.samplerate, info.channels, info.subtype) == (64000, 16000, 1, "PCM_16")
    rows = _check_manifest_matches_files(out)
    assert {r["instrument"] for r in rows} == {"guitar_acoustic_000", "flute_synthetic_001", mixed}
    row = next(r for r in rows if r["instrument"] == mixed)
    assert row["mix"] == MIX and row["model"] == str(tiny_sing.resolve())
    assert row["note_str"] == f"{mixed}-{row['pitch']:03d}-{row['velocity']:03d}"
    assert row["path"] == f"{mixed}/{row['note_str']}.wav" and row["seconds"] == 4.0
    audio, _ = sf.read(str(out / row["path"]))
    assert row["peak"] == pytest.approx(np.abs(audio).max(), abs=1e-4)
    assert row["rms"] == pytest.approx(np.sqrt(np.mean(audio ** 2)), rel=1e-3)
    names = ("guitar_acoustic_000", "flute_synthetic_001", mixed)
    for name in names:
        regions = parse_sfz((out / f"{name}.sfz").read_text())
        assert len(regions) == 6 and all((out / r["sample"]).is_file() for r in regions)
        assert len(parse_dspreset((out / f"{name}.dspreset").read_text())) == 6
    assert not [p for p in out.rglob("*") if TMP_MARK in p.name]
    # Every note has its shape in the manifest and its spectrogram beside it; the page links them all.
    assert all(r["release"] > 0 and (r["loop_start"] >= 0) == r["sustain"] for r in rows)
    assert {str(p.relative_to(out)) for p in out.glob("*/*.png")} == {n[:-4] + ".png" for n in notes}
    page = (out / "index.html").read_text()
    listed = {p for i in read_page_data(page)["instruments"] for p in note_paths(i).values()}
    assert listed == set(notes) and "library.sf2" in page
    files = _library_files(out)
    assert set(files) == {f"{n}.{ext}" for n in names for ext in ("sfz", "dspreset")} | {"library.sf2", "index.html"}
    meta = json.loads(pq.read_schema(out / "manifest.parquet").metadata[LIBRARY_KEY])
    assert set(meta["files"]) == set(files)
    # A real sampler plays the untrained model's library: a key at a rendered pitch gives back its sample.
    # sfizz runs at the samples' own rate here: the untrained notes keep 7 % of their energy above
    # 6 kHz, which sfizz's interpolation to 48 kHz dulls (correlation 0.944 there); the harmonic
    # notes of tests/library/test_playback.py are checked at 48 kHz.
    for name in names:
        played = play_sfz(out / f"{name}.sfz", 62, 127, held_s=2.5, total_s=2.6, sample_rate=16000)
        sample, _ = sf.read(str(out / f"{name}/{name}-062-127.wav"), dtype="int16")
        assert resampled_correlation(played, 16000, sample) >= 0.95, name
    logged = caplog.text
    assert "rendered 18/18 notes (100%)" in logged and "s of audio per second" in logged
    printed = capsys.readouterr().out
    assert "rendered 18 of 18 notes (0 already there)" in printed
    # Each stage's time and speed: the plan over the grid, the actors' stages over the notes they
    # rendered, the driver's over the library's notes.
    stages = dict(re.findall(r"^  (plan|synthesis|encoding/writing|sampler files|page|render \(wall\)) +[\d.]+ "
                             r"(?:s|actor-s) +(\d+) notes  [\d.,]+ notes per", printed, re.M))
    assert stages == {"plan": "18", "synthesis": "18", "encoding/writing": "18", "sampler files": "18",
                      "page": "18", "render (wall)": "18"}

    # A re-run renders nothing and touches no note.
    assert cli.main(["render", "--model", str(tiny_sing), "--out", str(out), *ARGS]) == 0
    printed = capsys.readouterr().out
    assert "rendered 0 of 18 notes (18 already there)" in printed
    assert re.search(r"^  synthesis +0\.00 actor-s +0 notes  nothing to do$", printed, re.M)
    assert _notes(out) == notes
    assert _library_files(out) == files                      # nothing changed: no sampler file rewritten

    # An interrupted run: one note never written, one written but not yet in the manifest,
    # a temporary file left behind. The re-run renders only the missing note.
    table = pq.read_table(out / "manifest.parquet")
    lost, orphan = sorted(notes)[0], sorted(notes)[1]
    (out / lost).unlink()
    keep = [r for r in table.to_pylist() if r["path"] != orphan]
    pq.write_table(table.from_pylist(keep, schema=table.schema), out / "manifest.parquet")
    (out / Path(lost).parent / f".x.wav{TMP_MARK}123").write_bytes(b"half a note")
    plan = plan_render(tiny_sing, out, instruments="guitar_acoustic_000,flute_synthetic_001", pitches="60:64:2",
                       velocities="25,127", mixes=[MIX])
    assert plan.todo == [nsynth.parse_note_str(Path(lost).stem)]
    summary = render_library(plan, batch_size=4, workers=1)
    assert (summary.rendered, summary.skipped, summary.notes) == (1, 17, 18)
    after = _notes(out)
    assert {k: v for k, v in after.items() if k != lost} == {k: v for k, v in notes.items() if k != lost}
    assert not [p for p in out.rglob("*") if TMP_MARK in p.name]
    _check_manifest_matches_files(out)

    # Another format through the pipeline entry point: new files beside the WAVs, one manifest for both.
    assert render_pipeline.main(["--model", str(tiny_sing), "--out", str(out), *ARGS, "--format", "flac"]) == 0
    flacs = _notes(out, "flac")
    assert len(flacs) == 18 and sf.info(str(out / sorted(flacs)[0])).format == "FLAC"
    assert len(_check_manifest_matches_files(out)) == 36
    regions = parse_sfz((out / "guitar_acoustic_000.sfz").read_text())
    assert all(r["sample"].endswith(".flac") for r in regions)
    after = _library_files(out)
    assert all(after[f] != files[f] for f in files)          # every file now maps the FLAC samples


def test_a_share_of_the_instruments_then_more_with_their_labels(ray_local, tmp_path, capsys):
    """--share keeps the same evenly spread instruments every run; a larger share adds to the library."""
    names = [f"{f}_{s}_{i:03d}" for i, (f, s) in enumerate(
        [("bass", "acoustic"), ("brass", "electronic"), ("flute", "synthetic"), ("guitar", "acoustic"),
         ("keyboard", "electronic"), ("mallet", "synthetic"), ("organ", "acoustic"), ("reed", "electronic")])]
    model = make_checkpoint(tmp_path / "eight.pt", instruments=names)
    info = tmp_path / "info.json"
    info.write_text(json.dumps({"instruments": [
        {"instrument_str": n, "soundfont": "/usr/share/sounds/sf2/TimGM6mb.sf2", "preset_name": f"Preset {i}",
         "bank": 0, "program": i} for i, n in enumerate(names)]}))
    out = tmp_path / "lib"
    args = ["render", "--model", str(model), "--out", str(out), "--pitches", "60", "--velocities", "100",
            "--batch-size", "4", "--workers", "1", "--formats", "sfz"]
    assert cli.main([*args, "--share", "0.25", "--instrument-info", str(info)]) == 0
    printed = capsys.readouterr().out
    assert "--share 0.25: 2 of 8 instruments; rendered 2 of 2 notes" in printed
    assert sorted(p.parent.name for p in out.glob("*/*.wav")) == [names[3], names[7]]
    page = read_page_data((out / "index.html").read_text())
    assert [(i["name"], i["soundfont"], i["preset"], i["program"]) for i in page["instruments"]] == \
        [(names[3], "TimGM6mb.sf2", "Preset 3", 3), (names[7], "TimGM6mb.sf2", "Preset 7", 7)]
    # Half of them: the two already there are kept, two more rendered; the labels stay without the flag.
    assert cli.main([*args, "--share", "0.5"]) == 0
    assert "--share 0.5: 4 of 8 instruments; rendered 2 of 4 notes (2 already there)" in capsys.readouterr().out
    page = read_page_data((out / "index.html").read_text())
    assert [i["name"] for i in page["instruments"]] == [names[1], names[3], names[5], names[7]]
    assert [i["preset"] for i in page["instruments"]] == ["Preset 1", "Preset 3", "Preset 5", "Preset 7"]
    for bad, message in (("0", "--share must be a fraction"), ("1.5", "--share must be a fraction"),
                         ("0.1", "keeps none")):
        assert cli.main([*args, "--share", bad]) == 2
        assert message in capsys.readouterr().err


def test_other_model_into_the_same_library_is_refused(ray_local, tiny_sing, tmp_path):
    out = tmp_path / "lib"
    render_library(plan_render(tiny_sing, out, instruments="guitar_acoustic_000", pitches="60", velocities="100"),
                   workers=1)
    other = make_checkpoint(tmp_path / "other.pt", seed=1)
    with pytest.raises(UserError, match="another model"):
        plan_render(other, out, instruments="guitar_acoustic_000", pitches="61", velocities="100")


def test_cli_reports_bad_input_before_any_work(tiny_sing, tmp_path, capsys):
    out = tmp_path / "lib"
    code = cli.main(["render", "--model", str(tiny_sing), "--out", str(out), "--instruments", "flute_synthetc_001"])
    assert code == 2
    assert "unknown instrument 'flute_synthetc_001'; close matches: flute_synthetic_001" in capsys.readouterr().err
    assert cli.main(["render", "--model", str(tmp_path / "nope.pt"), "--out", str(out)]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert not out.exists()


class _InterruptedMove:
    """A local file system whose rename is interrupted (Ctrl-C between write and rename)."""

    type_name = "local"

    def __init__(self):
        self.local = pafs.LocalFileSystem()

    def __getattr__(self, name):
        return getattr(self.local, name)

    def move(self, src, dst):
        raise KeyboardInterrupt


def test_a_note_appears_only_complete(tmp_path):
    ok = Location(pafs.LocalFileSystem(), str(tmp_path), str(tmp_path))
    ok.write_atomic(b"complete", "a.wav")
    assert (tmp_path / "a.wav").read_bytes() == b"complete"
    broken = Location(_InterruptedMove(), str(tmp_path), str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        broken.write_atomic(b"never published", "b.wav")
    assert sorted(os.listdir(tmp_path)) == ["a.wav"]
    assert not broken.atomic_put and Location(pafs.S3FileSystem(anonymous=True), "b", "s3://b").atomic_put


def test_default_layout_is_one_single_threaded_actor_per_core(ray_local):
    from sing_ray.render.job import _worker_resources

    count, res = _worker_resources(use_gpu=False, workers=None)
    # The fixture's Ray has 4 CPU slots; actors follow the cores, not the slots.
    assert count == min(4, os.cpu_count()) and res["threads"] == res["num_cpus"] == 1
    assert _worker_resources(use_gpu=False, workers=None, threads=2)[0] == max(1, min(4, os.cpu_count()) // 2)
    with pytest.raises(UserError, match="no GPU now"):
        _worker_resources(use_gpu=True, workers=None)
