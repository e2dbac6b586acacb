"""The inspectors under tools/: each shows its help, and each runs on a small dataset without Ray."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from conftest import make_nsynth

ROOT = Path(__file__).resolve().parents[1]
TOOLS = sorted(p.stem for p in (ROOT / "tools").glob("*.py") if not p.stem.startswith("_"))


@pytest.mark.parametrize("name", TOOLS)
def test_every_tool_shows_its_help_and_is_in_the_index(name):
    done = subprocess.run([sys.executable, "-m", f"tools.{name}", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m tools.{name}")
    assert f"`python -m tools.{name}" in (ROOT / "tools" / "README.md").read_text()


def _dataset(folder: Path) -> Path:
    """A small ingested dataset made without Ray: the plain ingest, then the manifest ingest writes."""
    from sing_ray.data.bench import plain_ingest
    from sing_ray.data.schema import SCHEMA_VERSION

    # 2 instruments x 6 pitches x 2 velocities; the split's hash puts the flute's MIDI 62 in test.
    make_nsynth(folder / "nsynth", pitches=range(60, 66))
    out = folder / "dataset"
    plain_ingest(str(folder / "nsynth"), str(out))
    shards = [{"path": f"notes/{p.name}", "split": p.name.split("-")[1], "num_rows": pq.read_metadata(p).num_rows}
              for p in sorted((out / "notes").glob("*.parquet"))]
    instruments = sorted({i for p in (out / "notes").glob("*.parquet")
                          for i in pq.read_table(p, columns=["instrument_str"]).column(0).to_pylist()})
    (out / "manifest.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION, "instruments": instruments,
                                                   "shards": shards}))
    (out / "_SUCCESS").write_text("")
    return out


def _run_folder(folder: Path, instruments: list[str]) -> Path:
    """A run folder of untrained ``tiny`` checkpoints, one per phase."""
    from sing_ray.checkpoint import save_checkpoint
    from sing_ray.config import load_config
    from sing_ray.models import build_autoencoder, build_sequence_generator, build_sing

    cfg = load_config("tiny")
    torch.manual_seed(0)
    extra = {"instruments": instruments}
    models = folder / "run" / "models"
    save_checkpoint(models / "autoencoder.pt", build_autoencoder(cfg.model), config=cfg, phase="autoencoder", epoch=1)
    save_checkpoint(models / "sequence.pt", build_sequence_generator(cfg.model, len(instruments)), config=cfg,
                    phase="sequence", epoch=1, extra=extra)
    save_checkpoint(models / "finetune.pt", build_sing(cfg.model, len(instruments)), config=cfg,
                    phase="finetune", epoch=1, extra=extra)
    return folder / "run"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tools")
    dataset = _dataset(folder)
    instruments = json.loads((dataset / "manifest.json").read_text())["instruments"]
    return dataset, _run_folder(folder, instruments)


def test_read_notes_gives_the_named_notes_in_order_with_their_audio(made):
    from tools._notes import read_notes, sample_notes

    dataset, _ = made
    names = ["guitar_acoustic_000-063-127", "flute_synthetic_001-060-025"]
    notes = read_notes(str(dataset), "train", names)
    assert list(notes["note_str"]) == names and notes["wav"].shape == (2, 64000)
    real = pq.read_table(dataset / "notes" / "part-train-00000.parquet", filters=[("note_str", "==", names[0])])
    assert np.array_equal(notes["wav"][0] * 32768, np.frombuffer(real.column("audio")[0].as_py(), "<i2"))
    assert list(sample_notes(str(dataset), "test")["note_str"]) == ["flute_synthetic_001-062-025",
                                                                    "flute_synthetic_001-062-127"]
    assert len(sample_notes(str(dataset), "train", 5)["note_str"]) == 5


def test_the_tools_run_on_a_dataset_and_a_run(made, capsys):
    from tools import levels, neighbours, note_shapes, stretch, timbre, untrained, where

    dataset, run = made
    finetune = str(run / "models" / "finetune.pt")
    assert timbre.main([finetune, str(dataset), "--train-notes", "4"]) == 0
    out = capsys.readouterr().out
    assert "| held-out (test) | 2 |" in out and "| training notes | 4 |" in out and "nearest key lts dB" in out
    assert timbre.main([finetune, str(dataset), "--train-notes", "0", "--pitches", "62"]) == 0
    assert "| held-out (test) | 2 |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        timbre.main([finetune, str(dataset), "--pitches", "61"])
    assert "no test note" in capsys.readouterr().err
    assert where.main([finetune, str(dataset), "--envelopes", "flute_synthetic_001-062-127"]) == 0
    assert "at the partials" in capsys.readouterr().out
    assert levels.main([str(run), str(dataset)]) == 0
    assert "before finetune" in capsys.readouterr().out
    assert untrained.main([str(dataset), "--preset", "tiny", "--variant", "model.channels=64"]) == 0
    assert "| model.channels=64 |" in capsys.readouterr().out
    assert neighbours.main([str(dataset), "--pitches", "60:65"]) == 0
    assert "2 held-out notes" in capsys.readouterr().out
    assert note_shapes.main([str(dataset.parent / "nsynth")]) == 0
    assert "| flute_synthetic_001 |" in capsys.readouterr().out
    assert stretch.main([str(dataset), "--preset", "quick", "--variant", "model.noise_scale=pitch"]) == 0
    out = capsys.readouterr().out
    assert out.count("2 held-out notes with a trained neighbour") == 2 and "| own | 2 |" in out
    assert "| linear | 2 |" in out and "| sampler | 2 |" in out


def test_stretch_takes_the_nearest_trained_pitch_and_the_chosen_one_half_way():
    from tools.stretch import _neighbours

    assert _neighbours(62, [60, 61, 63, 64], "lower") == (61, 61, 63)
    assert _neighbours(62, [60, 61, 63, 64], "upper") == (63, 61, 63)
    assert _neighbours(62, [60, 65], "upper") == (60, 60, 65)
    assert _neighbours(36, [40, 44], "lower") == (40, None, 40)
    assert _neighbours(36, [], "lower") == (None, None, None)


def test_the_tools_start_no_ray_and_no_mlflow(made):
    dataset, run = made
    script = (f"import sys; from tools import levels, timbre; "
              f"timbre.main([{str(run / 'models' / 'finetune.pt')!r}, {str(dataset)!r}, '--train-notes', '2']); "
              f"levels.main([{str(run)!r}, {str(dataset)!r}]); "
              f"print('loaded:', sorted({{'ray', 'mlflow'}} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stdout



def test_peakmem_counts_the_grandchildren_a_driver_starts(tmp_path):
    """A local Ray's workers are the driver's grandchildren: the tree's peak must include them."""
    from tools import peakmem

    (tmp_path / "out").write_bytes(b"x" * 3_000_000)
    (tmp_path / "grandchild.py").write_text("b = bytearray(400 * 2**20)\nimport time\ntime.sleep(1.5)\n")
    (tmp_path / "child.py").write_text(f"import subprocess, sys\nsubprocess.run([sys.executable, "
                                       f"{str(tmp_path / 'grandchild.py')!r}])\n")
    driver = (f"import subprocess, sys; a = bytearray(50 * 2**20); "
              f"subprocess.run([sys.executable, {str(tmp_path / 'child.py')!r}])")
    out = tmp_path / "peak.json"
    code = peakmem.main(["--every", "0.1", "--disk", str(tmp_path / "out"), "--json", str(out),
                         "--", sys.executable, "-c", driver])
    result = json.loads(out.read_text())
    assert code == 0 and result["returncode"] == 0
    assert 50 * 2**20 <= result["peak_driver"] < 400 * 2**20
    assert result["peak_tree"] >= 450 * 2**20
    assert result["disk_bytes"] == 3_000_000
    assert peakmem.main(["--", sys.executable, "-c", "raise SystemExit(3)"]) == 3
