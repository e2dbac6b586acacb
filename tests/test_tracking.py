import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from sing_ray.checkpoint import save_checkpoint
from sing_ray.config import load_config
from sing_ray.errors import UserError
from sing_ray.generate import Generator
from sing_ray.models import build_sing
from sing_ray.tracking import configure_mlflow, log_sing_model, resolve_model


@pytest.fixture
def tiny_checkpoint(tmp_path):
    cfg = load_config("tiny")
    torch.manual_seed(0)
    model = build_sing(cfg.model, num_instruments=2)
    return save_checkpoint(tmp_path / "sing.pt", model, config=cfg, phase="finetune", epoch=1,
                           extra={"instruments": ["guitar_acoustic_000", "flute_synthetic_001"]})


def test_registered_model_resolves_and_generates(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = configure_mlflow(f"sqlite:///{tmp_path / 'mlflow.db'}", "test")
    with mlflow.start_run():
        info = log_sing_model(tiny_checkpoint)
    version = max(int(v.version) for v in mlflow.MlflowClient(uri).search_model_versions("name='sing'"))
    path = resolve_model(f"models:/sing/{version}", uri)
    gen = Generator.from_checkpoint(path)
    direct = Generator.from_checkpoint(tiny_checkpoint).generate(["flute_synthetic_001"], [60], [100])
    assert np.array_equal(gen.generate(["flute_synthetic_001"], [60], [100]), direct)
    pyfunc = mlflow.pyfunc.load_model(info.model_uri)
    out = pyfunc.predict(pd.DataFrame({"instrument": ["guitar_acoustic_000"], "pitch": [64], "velocity": [25]}))
    assert out.shape == (1, 64000) and out.dtype == np.float32


def test_logged_model_has_a_signature_an_example_and_plays_mixes(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = configure_mlflow(f"sqlite:///{tmp_path / 'mlflow.db'}", "test")
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("test")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"   # the UI's training view
    with mlflow.start_run():
        info = log_sing_model(tiny_checkpoint)
    registered = mlflow.models.get_model_info("models:/sing/1")
    inputs = {c["name"]: (c["type"], c.get("required", True)) for c in registered.signature.inputs.to_dict()}
    assert inputs == {"instrument": ("string", True), "pitch": ("long", True), "velocity": ("long", True),
                      "mix": ("string", False)}
    assert registered.signature.outputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 64000)
    example = mlflow.models.Model.load(info.model_uri).load_input_example(mlflow.artifacts.download_artifacts(info.model_uri))
    assert list(example.columns) == ["instrument", "pitch", "velocity"]
    assert example["instrument"][0] == "guitar_acoustic_000"
    pyfunc = mlflow.pyfunc.load_model(info.model_uri)
    rows = pd.DataFrame({"instrument": ["flute_synthetic_001", "guitar_acoustic_000"], "pitch": [60, 60],
                         "velocity": [100, 100], "mix": [None, "guitar_acoustic_000:1,flute_synthetic_001:1"]})
    out = pyfunc.predict(rows)
    gen = Generator.from_checkpoint(tiny_checkpoint)
    assert np.array_equal(out[0], gen.generate(["flute_synthetic_001"], [60], [100])[0])
    half = gen.generate([0], [60], [100], mix={"guitar_acoustic_000": 0.5, "flute_synthetic_001": 0.5})[0]
    np.testing.assert_allclose(out[1], half, atol=1e-6)
    with pytest.raises(Exception, match="pitch"):          # the signature refuses a row without a pitch
        pyfunc.predict(pd.DataFrame({"instrument": ["flute_synthetic_001"], "velocity": [100]}))


def test_generator_rejects_bad_requests(tiny_checkpoint):
    gen = Generator.from_checkpoint(tiny_checkpoint)
    with pytest.raises(UserError, match="close matches: guitar_acoustic_000"):
        gen.generate(["guitar_acoustic_00"], [60], [100])
    with pytest.raises(UserError, match="pitch 130"):
        gen.generate([0], [130], [100])
    with pytest.raises(UserError, match="velocity 64"):
        gen.generate([0], [60], [64])
    mixed = gen.generate([0], [60], [100], mix={"guitar_acoustic_000": 0.5, "flute_synthetic_001": 0.5})
    assert mixed.shape == (1, 64000)
    with pytest.raises(UserError, match="no such checkpoint"):
        resolve_model("nowhere.pt")


def test_run_tree_names_and_lookups(tmp_path):
    """The pipeline run, its phase runs and an evaluation run carry the tags existing stores hold, and are found again."""
    from sing_ray import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment_id = tracking.training_experiment(client, "tree")
    assert tracking.training_experiment(client, "tree") == experiment_id
    run_dir = tmp_path / "runs" / "r1"
    parent = tracking.create_pipeline_run(client, experiment_id, "r1", dataset="ds", preset="tiny", run_dir=run_dir,
                                          params={"model.channels": 8, "dataset.num_train": 3}, manifest={"notes": 3})
    tags = client.get_run(parent.info.run_id).data.tags
    assert {k: tags[k] for k in ("sing_ray.stage", "sing_ray.dataset", "sing_ray.preset", "sing_ray.run_dir")} == {
        "sing_ray.stage": "train", "sing_ray.dataset": "ds", "sing_ray.preset": "tiny",
        "sing_ray.run_dir": str(run_dir)}
    assert client.get_run(parent.info.run_id).data.params == {"model.channels": "8", "dataset.num_train": "3"}
    assert tracking.find_pipeline_run(client, experiment_id, "r1").info.run_id == parent.info.run_id
    assert tracking.find_pipeline_run(client, experiment_id, parent.info.run_id).info.run_id == parent.info.run_id
    assert tracking.find_pipeline_run(client, experiment_id, "r2") is None

    phase = tracking.phase_run(client, parent, "autoencoder", params={"lr": 0.001}, dataset="ds", manifest={})
    again = tracking.phase_run(client, parent, "autoencoder", params={"lr": 0.001}, dataset="ds", manifest={})
    assert again.info.run_id == phase.info.run_id and phase.info.run_name == "autoencoder"
    assert {k: v for k, v in phase.data.tags.items() if k.startswith("sing_ray.")} == {
        "sing_ray.phase": "autoencoder", "sing_ray.stage": "train"}
    assert phase.data.tags["mlflow.parentRunId"] == parent.info.run_id
    tracking.finish_phase(client, parent.info.run_id, "autoencoder", run_dir / "models" / "autoencoder.pt", 3,
                          {"test_spectral_l1": 0.5, "train_loss": 0.25, "notes_per_second": 9.0})
    done = client.get_run(parent.info.run_id).data
    assert tracking.is_phase_finished(done.tags, "autoencoder") and not tracking.is_phase_finished(done.tags, "sequence")
    assert done.tags["sing_ray.phase.autoencoder"] == "finished"
    assert done.tags["sing_ray.checkpoint.autoencoder"] == str(run_dir / "models" / "autoencoder.pt")
    assert done.tags["sing_ray.epochs.autoencoder"] == "3"
    assert done.metrics == {"autoencoder.test_spectral_l1": 0.5, "autoencoder.train_loss": 0.25}

    assert set(tracking.phase_runs(client, parent)) == {"autoencoder"}
    assert tracking.find_run(client, "r1").info.run_id == parent.info.run_id
    assert tracking.find_run(client, phase.info.run_id).info.run_id == phase.info.run_id
    assert tracking.find_run(client, "autoencoder") is None          # a phase run is not a top-level run
    assert tracking.find_training_run(f"runs:/{phase.info.run_id}/sing", uri) == parent.info.run_id
    assert tracking.find_training_run(str(run_dir / "models" / "finetune.pt"), uri) == parent.info.run_id

    evaluation = tracking.create_evaluation_run(client, experiment_id, "evaluate-x", "m.pt",
                                                parent_id=parent.info.run_id, start_time=1.5e9)
    assert {k: v for k, v in evaluation.data.tags.items() if k.startswith(("sing_ray.", "mlflow.parent"))} == {
        "sing_ray.stage": "evaluate", "sing_ray.model": "m.pt", "mlflow.parentRunId": parent.info.run_id}
    assert evaluation.info.start_time == 1.5e12
    # The names the phase runs' workers write (train.loops) and bench quality reads.
    assert tracking.epoch_checkpoint_artifact(7) == "checkpoints/epoch-007"
    assert (tracking.EPOCH_SECONDS_METRIC, tracking.NOTES_PER_SECOND_METRIC) == ("epoch_seconds", "notes_per_second")
    assert (tracking.SILENT_OUTPUT_TAG, tracking.DIVERGED_TAG) == ("sing_ray.silent_output", "sing_ray.diverged")
