"""``sing-ray render --compare-dataset``: the nearest-key and real notes beside a library, never in its sampler files."""
import json
import logging

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from sing_ray import cli
from sing_ray.data.dataset import read_split_metadata
from sing_ray.data.ingest import ingest
from sing_ray.errors import UserError
from sing_ray.evaluate import fetch_notes
from sing_ray.library.compare import INDEX
from sing_ray.library.dspreset import parse_dspreset
from sing_ray.library.page import png_path, read_data as read_page_data
from sing_ray.library.sfz import parse_sfz
from sing_ray.render import plan_render
from sing_ray.timbre import shift_pitch

from conftest import make_nsynth

DATASET_INSTRUMENTS = ("guitar_acoustic_000", "flute_synthetic_001")
MIX = "guitar_acoustic_000:0.5,flute_synthetic_001:0.5"
# 69 is not in the dataset (56-67): a nearest key, no real note. keyboard_electronic_002 (in the
# model, not in the dataset) and the mix have neither.
ARGS = ["--instruments", "guitar_acoustic_000,flute_synthetic_001,keyboard_electronic_002", "--pitches", "60,62,69",
        "--velocities", "127", "--mix", MIX, "--batch-size", "12", "--workers", "1"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare-ds")
    make_nsynth(root / "src", instruments=DATASET_INSTRUMENTS, pitches=range(56, 68), velocities=(25, 127))
    ingest(str(root / "src"), str(root / "ds"), progress=False)
    return str(root / "ds")


def _corr(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_compare_notes_beside_the_library(ray_local, tiny_sing, dataset, tmp_path, caplog, capsys):
    out = tmp_path / "lib"
    caplog.set_level(logging.INFO, logger="sing_ray")
    assert cli.main(["render", "--model", str(tiny_sing), "--out", str(out), *ARGS, "--compare-dataset", dataset]) == 0
    printed = capsys.readouterr().out
    # 12 notes: the 6 of the dataset's instruments all have a nearest key, the 4 at 60 and 62 a real note.
    assert ("compare notes for 12 library notes: 6 with the nearest key a sampler would stretch, 4 with their "
            "real note, 6 with neither (3 of them timbre mixes); 6 written now") in printed
    assert "6 of 12 library notes have neither a nearest key nor a real note" in caplog.text

    index = json.loads((out / INDEX).read_text())
    train = read_split_metadata(dataset, "train")
    train_keys = set(zip(train["instrument_str"].astype(str), train["pitch"].astype(int),
                         train["velocity"].astype(int)))
    assert sorted(index["notes"]) == [f"{i}/{i}-{p:03d}-127.wav" for i in sorted(DATASET_INSTRUMENTS)
                                      for p in (60, 62, 69)]
    sources = fetch_notes(dataset, "train", sorted({e["nearest_note"] for e in index["notes"].values()}))
    source_audio = dict(zip(sources["note_str"].astype(str), sources["wav"]))
    for path, entry in index["notes"].items():
        instrument, pitch = path.split("/")[0], int(path[-11:-8])
        # The nearest key: a training note of the same instrument and velocity at another pitch, never the note.
        src = entry["nearest_note"]
        src_pitch = int(src.split("-")[1])
        assert src.startswith(instrument) and src_pitch != pitch and (instrument, src_pitch, 127) in train_keys
        assert entry["semitones"] == pitch - src_pitch and entry["nearest"].startswith("compare/")
        nearest, rate = sf.read(out / entry["nearest"], dtype="float32")
        assert rate == 16000 and len(nearest) == 64000
        assert _corr(nearest, shift_pitch(source_audio[src], pitch - src_pitch)) > 0.999
        assert (out / entry["nearest"]).with_suffix(".png").is_file()
        if pitch == 69:
            assert "real" not in entry
            continue
        # The real note: the dataset's own, whichever split holds it, as recorded.
        real, _ = sf.read(out / entry["real"], dtype="float32")
        held = fetch_notes(dataset, entry["real_split"], [path.split("/")[1][:-4]])["wav"][0]
        assert np.abs(real - held).max() <= 1 / 32768
        assert _corr(nearest, real) < 0.9                 # another recording, not the note itself
        assert set(entry["lts_db"]) == {"model", "nearest"}
    assert len(index["none"]) == 6

    # No sampler file, and no manifest row, knows of them.
    manifest = pq.read_table(out / "manifest.parquet").to_pylist()
    assert len(manifest) == 12 and not [r for r in manifest if r["path"].startswith("compare/")]
    for name in (*DATASET_INSTRUMENTS, "keyboard_electronic_002"):
        samples = [r["sample"] for r in parse_sfz((out / f"{name}.sfz").read_text())]
        samples += [r["path"] for r in parse_dspreset((out / f"{name}.dspreset").read_text())]
        assert len(samples) == 6 and not [s for s in samples if "compare" in s]
        assert "compare" not in (out / f"{name}.sfz").read_text() + (out / f"{name}.dspreset").read_text()
    assert b"compare" not in (out / "library.sf2").read_bytes()
    # The page's buttons point at files that exist.
    page = (out / "index.html").read_text()
    choices = read_page_data(page)["compare"]
    links = [f for cs in choices.values() for _, f, _ in cs]
    assert len(links) == 6 + 6 + 4 and all((out / p).is_file() and (out / png_path(p)).is_file() for p in links)

    # A re-run renders nothing, reads no compare file back as a note, and writes no compare file again.
    before = {p: p.stat().st_mtime_ns for p in (out / "compare").rglob("*")}
    plan = plan_render(tiny_sing, out, instruments=ARGS[1], pitches="60,62,69", velocities="127", mixes=[MIX],
                       compare_dataset=dataset)
    assert plan.todo == [] and len(plan.existing) == 12
    assert cli.main(["render", "--model", str(tiny_sing), "--out", str(out), *ARGS, "--compare-dataset", dataset]) == 0
    assert "0 written now" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (out / "compare").rglob("*")} == before
    # Without the option the page keeps its buttons (the files are still there).
    assert cli.main(["render", "--model", str(tiny_sing), "--out", str(out), *ARGS]) == 0
    assert (out / "index.html").read_text() == page


def test_a_compare_dataset_that_is_not_one_is_refused_before_any_work(tiny_sing, tmp_path):
    with pytest.raises(UserError, match="--compare-dataset: .*no such dataset folder"):
        plan_render(tiny_sing, tmp_path / "lib", instruments="guitar_acoustic_000", pitches="60", velocities="127",
                    compare_dataset=tmp_path / "nothing")
