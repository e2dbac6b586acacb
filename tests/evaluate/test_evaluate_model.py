"""`sing-ray evaluate` end to end on a small ingested dataset, with Ray Data and MLflow."""
import json

import mlflow
import numpy as np
import pytest
import torch

from sing_ray import cli
from sing_ray import evaluate as ev
from sing_ray.checkpoint import save_checkpoint
from sing_ray.config import load_config
from sing_ray.data.dataset import WAV_COLUMN, load_manifest, load_vocabulary
from sing_ray.data.ingest import ingest
from sing_ray.errors import UserError
from sing_ray.models import build_autoencoder, build_sing
from sing_ray.tracking import manifest_digest

from conftest import make_nsynth

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory, ray_local):
    """2 instruments x 12 pitches x 2 velocities, ingested: a few notes in each split."""
    root = tmp_path_factory.mktemp("evalds")
    make_nsynth(root / "src", pitches=range(48, 60), velocities=(50, 127))
    ingest(str(root / "src"), str(root / "ds"), progress=False)
    return root / "ds"


@pytest.fixture(scope="module")
def checkpoints(small_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("evalckpt")
    cfg = load_config("tiny")
    torch.manual_seed(0)
    vocab = load_vocabulary(str(small_dataset))
    sing = save_checkpoint(root / "sing.pt", build_sing(cfg.model, len(vocab)), config=cfg,
                           phase="finetune", epoch=1, extra={"instruments": vocab})
    ae = save_checkpoint(root / "ae.pt", build_autoencoder(cfg.model), config=cfg, phase="autoencoder", epoch=1)
    return {"sing": sing, "autoencoder": ae}


def test_scores_match_direct_computation(small_dataset, checkpoints, tmp_path):
    result = ev.evaluate_model(checkpoints["sing"], str(small_dataset), "train", out=tmp_path / "rep",
                               max_notes=6, with_reference_pitch=False, log_to_mlflow=False)
    notes = result.notes
    assert len(notes["note_str"]) == 6 and list(notes["note_str"]) == sorted(notes["note_str"])
    # The Ray actor pool's numbers equal the metrics computed here on the same notes.
    real = ev.fetch_notes(str(small_dataset), "train", list(notes["note_str"][:2]))
    fn, _ = ev.build_note_model(checkpoints["sing"].read_bytes())
    generated = fn(real["instrument_str"], real["pitch"], real["velocity"], real[WAV_COLUMN])
    direct = ev.note_metrics(generated, real[WAV_COLUMN], real["pitch"], with_reference_pitch=False)
    for key in ("wav_mse", "spectral_l1", "mrstft"):
        assert np.allclose(notes[key][:2], direct[key], rtol=1e-5), key
    # An untrained SING makes near-silence: hardly any note is in tune, and the report says so.
    assert result.report["summary"]["overall"]["pitch_accuracy"] <= 0.5
    saved = json.loads(result.paths["json"].read_text())
    assert saved["num_notes"] == 6 and saved["split_size"] >= 6
    assert set(saved["summary"]["by_family"]) <= {"guitar", "flute"}
    assert {"instrument_embeddings", "spectrograms"} <= set(result.paths)
    assert "![spectrograms](spectrograms.png)" in result.paths["markdown"].read_text()


def test_scoring_here_gives_the_actor_pools_notes_and_numbers(small_dataset, checkpoints):
    checkpoint = checkpoints["sing"].read_bytes()
    options = dict(max_notes=4, with_pitch=False, with_reference_pitch=False, with_embedding=False)
    pooled, size = ev.score_split(checkpoint, str(small_dataset), "train", **options)
    here, size_here, audio = ev.score_split_here(checkpoint, str(small_dataset), "train", **options)
    assert list(here["note_str"]) == list(pooled["note_str"]) and size_here == size
    for key in ("wav_mse", "spectral_l1", "spectral_l1_silence", "rms_db", "rms_db_real", "pitch", "velocity"):
        assert np.allclose(here[key], pooled[key], rtol=1e-5), key
    assert audio["real"].shape == audio["generated"].shape == (4, 64000)
    assert np.allclose(ev.rms_dbfs(audio["real"]), here["rms_db_real"])


def test_autoencoder_reconstruction_and_cli_with_mlflow(small_dataset, checkpoints, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "report"
    code = cli.main(["evaluate", "--model", str(checkpoints["autoencoder"]), "--dataset", str(small_dataset),
                     "--split", "test", "--out", str(out), "--tracking-uri", uri, "--max-notes", "3"])
    assert code == 0
    printed = capsys.readouterr().out
    # The listener's summary: the model beside the real notes, the nearest key and silence.
    assert "| 3 notes | model | real notes | nearest key (sampler) | silence (all-zero output) |" in printed
    assert "spectral L1 / silence's" in printed and "near-silent notes" in printed
    assert "median long-term spectrum distance, lts_db (dB)" in printed
    # Training notes beside the held-out ones: by default as many as the notes scored.
    assert "| held-out (test) | 3 |" in printed and "| training notes | 3 |" in printed
    report = json.loads((out / "evaluation.json").read_text())
    assert report["train_notes"]["num_notes"] == 3 and report["nearest_key"]["num_missing"] == 0
    assert report["model_class"] == "Autoencoder" and report["num_notes"] >= 1
    # Reference pitch: the synthetic tones sit exactly on their MIDI pitch.
    assert report["summary"]["overall"]["pitch_accuracy_real"] == 1.0
    assert (out / "spectrograms.png").stat().st_size > 10_000
    runs = mlflow.MlflowClient(uri).search_runs(
        [mlflow.MlflowClient(uri).get_experiment_by_name("sing-ray").experiment_id])
    assert runs and "test_spectral_l1" in runs[0].data.metrics
    overall = report["summary"]["overall"]
    for key in ("median_abs_rms_db_diff", "spectral_l1_vs_silence", "num_near_silent", "near_silent_share",
                "median_lts_db", "nk_median_lts_db", "closer_than_nearest_key_share"):
        assert runs[0].data.metrics[f"test_{key}"] == pytest.approx(overall[key]), key
    train_overall = report["train_notes"]["summary"]["overall"]
    assert runs[0].data.metrics["train_median_lts_db"] == pytest.approx(train_overall["median_lts_db"])
    assert "## What a listener would notice" in (out / "evaluation.md").read_text()
    assert {a.path for a in mlflow.MlflowClient(uri).list_artifacts(runs[0].info.run_id, "evaluation")} >= {
        "evaluation/evaluation.md", "evaluation/evaluation.json", "evaluation/spectrograms.png"}
    # The UI's story: the run lasts as long as the work, and names the dataset it read.
    info = runs[0].info
    assert (info.end_time - info.start_time) / 1000 >= report["seconds"] - 0.5, (info, report["seconds"])
    (read,) = runs[0].inputs.dataset_inputs
    assert read.dataset.name == small_dataset.name and str(small_dataset) in read.dataset.source
    assert read.dataset.digest == manifest_digest(load_manifest(str(small_dataset)))
    assert {t.key: t.value for t in read.tags}["mlflow.data.context"] == "evaluation (test)"


def test_the_nearest_key_is_another_training_note_stretched_to_the_pitch(small_dataset, checkpoints):
    from sing_ray import timbre
    from sing_ray.data.dataset import read_split_metadata

    dataset, checkpoint = str(small_dataset), checkpoints["sing"].read_bytes()
    train = read_split_metadata(dataset, "train")
    assert set(train) == {"note_str", "instrument_str", "pitch", "velocity"}
    assert sorted(train["note_str"]) == sorted(_split_note_strs(small_dataset, "train"))
    options = dict(max_notes=4, with_pitch=False, with_reference_pitch=False)
    for split in ("test", "train"):
        here, _, audio = ev.score_split_here(checkpoint, dataset, split, nearest_key=True, **options)
        for i, name in enumerate(here["note_str"]):
            source = str(here["nk_note_str"][i])
            # Never the scored note itself, even for a training note, which is in the train split.
            assert source and source != name
            row = list(train["note_str"]).index(source)
            instrument, pitch, velocity = here["instrument_str"][i], int(here["pitch"][i]), int(here["velocity"][i])
            assert train["instrument_str"][row] == instrument and train["velocity"][row] == velocity
            others = [int(p) for n, p, v in zip(train["instrument_str"], train["pitch"], train["velocity"])
                      if n == instrument and v == velocity and p != pitch]
            assert abs(pitch - train["pitch"][row]) == min(abs(pitch - p) for p in others)
            assert here["nk_semitones"][i] == pitch - train["pitch"][row]
        np.testing.assert_array_equal(here["closer_than_nearest_key"], here["lts_db"] < here["nk_lts_db"])
    # What was scored is that note, read from the train split and stretched to the pitch.
    fetched = ev.fetch_notes(dataset, "train", [str(here["nk_note_str"][0])])
    shifted = timbre.shift_pitch(fetched[WAV_COLUMN][0], here["nk_semitones"][0], audio["real"].shape[1])
    direct = timbre.timbre_metrics(shifted[None], audio["real"][:1])
    assert here["nk_lts_db"][0] == pytest.approx(direct["lts_db"][0], rel=1e-6)
    # The actor pool scores the same baseline on the same notes.
    pooled, _ = ev.score_split(checkpoint, dataset, "train", nearest_key=True, with_embedding=False, **options)
    assert list(pooled["nk_note_str"]) == list(here["nk_note_str"])
    assert np.allclose(pooled["nk_lts_db"], here["nk_lts_db"], rtol=1e-5)
    assert np.allclose(pooled["nk_spectral_l1"], here["nk_spectral_l1"], rtol=1e-5)


def test_unknown_instruments_and_bad_models_are_user_errors(small_dataset, tmp_path):
    cfg = load_config("tiny")
    other = save_checkpoint(tmp_path / "other.pt", build_sing(cfg.model, 1), config=cfg, phase="finetune",
                            extra={"instruments": ["brass_acoustic_000"]})
    with pytest.raises(UserError, match="does not know"):
        ev.evaluate_model(other, str(small_dataset), log_to_mlflow=False)
    assert cli.main(["evaluate", "--model", str(tmp_path / "missing.pt"), "--dataset", str(small_dataset)]) == 2


def test_silence_baseline_is_the_energy_of_the_notes(small_dataset):
    from sing_ray.data.dataset import load_manifest
    from sing_ray.table1 import silence_baseline

    base = silence_baseline(str(small_dataset))
    test_notes = load_manifest(str(small_dataset))["splits"]["test"]["accepted"]
    assert base["num_notes"][1] == test_notes
    ds = ev.fetch_notes(str(small_dataset), "test", _test_note_strs(small_dataset))
    direct = ev.note_metrics(np.zeros_like(ds[WAV_COLUMN]), ds[WAV_COLUMN], with_pitch=False,
                             with_reference_pitch=False, with_embedding=False)
    assert base["wav_mse"][1] == pytest.approx(float(direct["wav_mse"].mean()), rel=1e-6)
    assert base["spectral_l1"][1] == pytest.approx(float(direct["spectral_l1"].mean()), rel=1e-6)


def _test_note_strs(dataset):
    return _split_note_strs(dataset, "test")


def _split_note_strs(dataset, split):
    from sing_ray.data.dataset import make_note_dataset

    return [str(s) for s in make_note_dataset(str(dataset), split).select_columns(["note_str"]).to_pandas()["note_str"]]


def test_scoring_actors_leave_a_cpu_for_reading_the_notes():
    """`sing-ray evaluate --num-cpus 1` waited forever: its one actor held the only CPU that
    the reads feeding it needed."""
    assert ev.scorer_cpus(1, 1) == 0.0
    assert ev.scorer_cpus(2, 2) == 0.5
    assert ev.scorer_cpus(2, 1) == 1.0                  # a CPU each, and one left over
    assert ev.scorer_cpus(16, 4) == 1.0
    assert ev.scorer_cpus(0, 2) == 1.0                  # an autoscaling cluster starts them
    for cpus in (1, 2, 3, 4):
        for workers in (1, 2, 3):
            reserved = ev.scorer_cpus(cpus, workers) * workers
            assert reserved == workers if cpus > workers else reserved <= cpus - 1
