"""The training pipeline end to end on Ray Train: 2 CPU workers, the tiny preset, 28 notes.

One pipeline run is shared by the tests of this module (it is what takes time):

1. ``run_pipeline`` with two injected faults: the rank-1 worker SIGKILLs itself in
   epoch 2 of ``autoencoder`` (``max_failures=1``: Ray Train restarts the workers from
   epoch 1's checkpoint and the phase finishes), and the loss of epoch 2 of
   ``sequence`` turns NaN (the phase stops with NonFiniteLossError).
2. ``run_pipeline`` again, same run name, no faults: ``autoencoder`` is skipped,
   ``sequence`` resumes after its epoch 1, ``finetune`` runs, the model is registered.
3. ``sing-ray train`` again, same run name: everything is finished; it prints the
   model URI, the run id and how to open the MLflow UI.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest

from sing_ray import cli
from sing_ray.checkpoint import load_checkpoint
from sing_ray.config import load_config
from sing_ray.data.dataset import load_manifest, load_vocabulary
from sing_ray.generate import Generator
from sing_ray.tracking import manifest_digest, resolve_model
from sing_ray.train import NonFiniteLossError, run_pipeline
from sing_ray.train.faults import ENV_VAR

pytestmark = pytest.mark.slow

RUN = "tiny-test"


def _overrides(work: Path, uri: str, max_failures: int) -> list[str]:
    return ["run.num_workers=2", f"run.run_name={RUN}", f"run.tracking_uri={uri}",
            f"run.storage_path={work / 'runs'}", f"run.max_failures={max_failures}"]


@pytest.fixture(scope="module")
def trained(train_dataset, tmp_path_factory):
    work = tmp_path_factory.mktemp("train-run")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        # MLflow puts a new experiment's artifacts under the working folder of the
        # moment its store is opened: open it (the client) only once there.
        mp.chdir(work)
        client = mlflow.MlflowClient(uri)
        mp.setenv(ENV_VAR, "kill:autoencoder:2:1,nan:sequence:2:1")
        with pytest.raises(NonFiniteLossError) as first:
            run_pipeline(load_config("tiny", overrides=_overrides(work, uri, 1)), train_dataset)
        mp.delenv(ENV_VAR)
        parent = client.search_runs([client.get_experiment_by_name("sing-ray").experiment_id],
                                    filter_string=f"tags.mlflow.runName = '{RUN}'")[0]
        statuses = {r.info.run_name: r.info.status for r in _children(client, parent.info.run_id)}
        statuses["parent"] = parent.info.status
        # As after a real divergence, the re-run lowers the learning rate (tiny: 0.003).
        second = run_pipeline(load_config("tiny", overrides=[*_overrides(work, uri, 1), "train.sequence.lr=0.002"]),
                              train_dataset)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli.main(["train", "--dataset", train_dataset, "--preset", "tiny", "--workers", "2",
                             "--run-name", RUN, "--tracking-uri", uri, "--storage", str(work / "runs"),
                             "--no-progress"])
        ae_only = run_pipeline(load_config("tiny", overrides=_overrides(work, uri, 1)), train_dataset,
                               phases=("autoencoder",))
    return SimpleNamespace(work=work, uri=uri, client=client, first_error=first.value, statuses_after_first=statuses,
                           result=second, cli_code=code, cli_out=out.getvalue(), ae_only=ae_only,
                           dataset=train_dataset)


def _children(client, parent_id: str):
    parent = client.get_run(parent_id)
    return client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.timestamp)]


def test_killed_worker_is_survived_from_the_latest_checkpoint(trained):
    marker = trained.result.run_dir / "faults" / "kill-autoencoder-e2-s1.fired"
    assert marker.exists(), "the fault did not fire: nothing was tested"
    phase = trained.result.phases["autoencoder"]
    # The restarted workers restored epoch 1's checkpoint and trained epochs 2 and 3.
    assert _history(trained.client, phase.run_id, "resumed_from_epoch") == [(1, 1.0)]
    assert [s for s, _ in _history(trained.client, phase.run_id, "train_loss")] == [1, 2, 3]
    assert phase.epochs == 3 and phase.checkpoint.exists()


def test_nonfinite_loss_stops_the_phase_and_keeps_the_last_good_checkpoint(trained):
    err = trained.first_error
    assert err.exit_code == 1
    message = str(err)
    assert "non-finite at epoch 2 step 1" in message and "(epoch 1)" in message
    assert trained.statuses_after_first["sequence"] == "FAILED"
    assert trained.statuses_after_first["parent"] == "FAILED"
    assert trained.statuses_after_first["autoencoder"] == "FINISHED"


def test_rerun_skips_finished_phases_and_resumes_the_interrupted_one(trained):
    phases = trained.result.phases
    assert list(phases) == ["autoencoder", "sequence", "finetune"]
    assert phases["autoencoder"].skipped
    assert not phases["sequence"].skipped and phases["sequence"].resumed_from_epoch == 1
    seq = phases["sequence"].run_id
    assert _history(trained.client, seq, "resumed_from_epoch") == [(1, 1.0)]
    # Epoch 1 from the first invocation, epochs 2 and 3 from the resumed one: each once,
    # the resumed ones with the lowered learning rate (not the one in the optimizer state).
    assert sorted(s for s, _ in _history(trained.client, seq, "train_loss")) == [1, 2, 3]
    assert sorted(_history(trained.client, seq, "lr")) == [(1, 0.003), (2, 0.002), (3, 0.002)]
    assert phases["finetune"].resumed_from_epoch == 0 and phases["finetune"].epochs == 2
    assert trained.client.get_run(trained.result.run_id).info.status == "FINISHED"


def test_each_phase_training_loss_falls(trained):
    for name, phase in trained.result.phases.items():
        history = [v for _, v in sorted(_history(trained.client, phase.run_id, "train_loss"))]
        assert len(history) >= 2 and all(np.isfinite(history)), name
        assert history[-1] < history[0], f"{name}: {history}"


def test_mlflow_layout_params_metrics_artifacts(trained):
    client, result = trained.client, trained.result
    parent = client.get_run(result.run_id)
    location = client.get_experiment(parent.info.experiment_id).artifact_location
    assert location.startswith(str(trained.work)), location
    assert parent.data.params["model.channels"] == "128" and parent.data.params["train.loss"] == "wav"
    assert parent.data.params["dataset.num_train"] == "20"
    assert parent.data.tags["sing_ray.registered_model"] == result.model_uri
    children = {r.info.run_name: r for r in _children(client, result.run_id)}
    assert set(children) == {"autoencoder", "sequence", "finetune"}
    for name, run in children.items():
        assert run.data.tags["sing_ray.phase"] == name
        for key in ("train_loss", "valid_wav_mse", "valid_spectral_l1", "test_wav_mse", "test_spectral_l1",
                    "train_wav_mse", "train_spectral_l1"):
            assert np.isfinite(run.data.metrics[key]), (name, key)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"checkpoints", "examples", "spectrograms.png"} <= artifacts, name
        epochs = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
        assert f"checkpoints/epoch-{result.phases[name].epochs:03d}" in epochs
        wavs = [a.path for a in client.list_artifacts(run.info.run_id, "examples")]
        assert any(w.endswith("-generated.wav") for w in wavs) and any(w.endswith("-reference.wav") for w in wavs)
    assert "valid_embedding_mse" in children["sequence"].data.metrics
    assert np.isfinite(parent.data.metrics["autoencoder.test_spectral_l1"])
    # What the MLflow UI shows: a model-training experiment, each run reading the ingested dataset.
    assert client.get_experiment(parent.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    digest = manifest_digest(load_manifest(trained.dataset))
    for run in (parent, *children.values()):
        (read,) = client.get_run(run.info.run_id).inputs.dataset_inputs
        assert read.dataset.name == Path(trained.dataset).name and read.dataset.digest == digest, run.info.run_name
        assert Path(trained.dataset).name in read.dataset.source
    assert children["finetune"].data.params["loss"] == load_config("tiny").train.phase_loss("finetune")


def test_registered_model_generates_a_note(trained):
    result = trained.result
    assert result.model_uri and result.model_uri.startswith("models:/sing/")
    path = resolve_model(result.model_uri, trained.uri)
    ckpt = load_checkpoint(path)
    assert ckpt["class"] == "SING" and ckpt["phase"] == "finetune" and ckpt["epoch"] == 2
    vocabulary = load_vocabulary(trained.dataset)
    assert ckpt["extra"]["instruments"] == vocabulary
    wav = Generator.from_checkpoint(path).generate([vocabulary[0]], [60], [100])
    assert wav.shape == (1, 64000) and np.isfinite(wav).all()
    # A note, not silence (what a model collapsed by its loss would give).
    assert np.abs(wav).max() > 1e-3
    assert "sing_ray.silent_output" not in trained.client.get_run(result.phases["finetune"].run_id).data.tags
    assert load_checkpoint(result.checkpoints["sequence"])["class"] == "SequenceGenerator"


def test_cli_rerun_reports_model_run_and_ui(trained):
    out = trained.cli_out
    assert trained.cli_code == 0
    assert f"registered model: {trained.result.model_uri}" in out
    assert f"MLflow run: {trained.result.run_id}" in out
    assert f"mlflow ui --backend-store-uri {trained.uri}" in out
    assert out.count("skipped (finished earlier)") == 3


def test_autoencoder_only_result_has_the_table1_autoencoder_scores(trained):
    ae = trained.ae_only
    assert list(ae.phases) == ["autoencoder"] and ae.model_uri is None
    metrics = ae.phases["autoencoder"].metrics
    for key in ("train_spectral_l1", "test_spectral_l1", "train_wav_mse", "test_wav_mse"):
        assert np.isfinite(metrics[key])
    assert load_checkpoint(ae.checkpoint)["class"] == "Autoencoder"


# ---------------------------------------------------------------------------
# Errors reported before any worker starts
# ---------------------------------------------------------------------------


@pytest.fixture
def no_workers(monkeypatch):
    """Make starting a Ray Train run fail the test."""
    import ray.train.torch

    def refuse(*args, **kwargs):
        raise AssertionError("a TorchTrainer was created")

    monkeypatch.setattr(ray.train.torch.TorchTrainer, "__init__", refuse)


@pytest.mark.parametrize("extra, message", [
    (["--set", "model.kernel_size=1000"], "multiple of model.stride"),
    (["--set", "model.wav_length=32000"], "does not fit the dataset's notes"),
    (["--workers", "3"], "must be a positive multiple of run.num_workers"),
    (["--workers", "8"], "needs 8 CPUs"),
    (["--workers", "2", "--cpus-per-worker", "3"], "needs 6 CPUs"),
    (["--epochs", "1,2"], "three counts"),
    (["--phases", "sequence"], "prefix"),
])
def test_config_errors_exit_2_before_any_worker(train_dataset, tmp_path, monkeypatch, capsys, no_workers,
                                                extra, message):
    monkeypatch.chdir(tmp_path)
    code = cli.main(["train", "--dataset", train_dataset, "--preset", "tiny", "--storage", str(tmp_path / "runs"),
                     "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *extra])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_unknown_preset_and_missing_train_split_exit_2(train_dataset, tmp_path, monkeypatch, capsys, no_workers):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--dataset", train_dataset, "--preset", "huge"])
    assert exc.value.code == 2
    # A dataset whose train split is empty (only its manifest needs to say so).
    no_train = tmp_path / "no-train.ds"
    shutil.copytree(train_dataset, no_train)
    manifest = json.loads((no_train / "manifest.json").read_text())
    manifest["splits"]["train"] = {"listed": 0, "accepted": 0, "rejected": 0}
    manifest["shards"] = [s for s in manifest["shards"] if s["split"] != "train"]
    (no_train / "manifest.json").write_text(json.dumps(manifest))
    code = cli.main(["train", "--dataset", str(no_train), "--preset", "tiny"])
    assert code == 2 and "no notes in its train split" in capsys.readouterr().err
    code = cli.main(["train", "--dataset", str(tmp_path / "nowhere"), "--preset", "tiny"])
    assert code == 2 and "no such dataset" in capsys.readouterr().err


def test_resuming_with_another_model_is_refused(trained, monkeypatch, capsys, no_workers):
    monkeypatch.chdir(trained.work)
    code = cli.main(["train", "--dataset", trained.dataset, "--preset", "tiny", "--workers", "2",
                     "--run-name", RUN, "--tracking-uri", trained.uri, "--storage", str(trained.work / "runs"),
                     "--time-dim", "0"])
    assert code == 2
    assert "model.time_dim: 4 -> 0" in capsys.readouterr().err


def test_bench_quality_scores_the_runs_epochs_against_training_time(trained, capsys):
    code = cli.main(["bench", "quality", "--run", RUN, "--dataset", trained.dataset, "--tracking-uri", trained.uri,
                     "--every", "1", "--max-notes", "4", "--targets", "0.5,1"])
    out = capsys.readouterr().out
    assert code == 0
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| sequence") or line.startswith("| finetune")]
    # Every epoch of both phases, in training order, minutes growing.
    assert [(r[0].strip("| "), int(r[1])) for r in rows] == [("sequence", 1), ("sequence", 2), ("sequence", 3),
                                                               ("finetune", 1), ("finetune", 2)]
    minutes = [float(r[2]) for r in rows]
    assert minutes == sorted(minutes)
    # The minutes add up each epoch's own seconds (a tiny epoch's are under the table's 0.1 min).
    for name in ("sequence", "finetune"):
        seconds = trained.client.get_metric_history(trained.result.phases[name].run_id, "epoch_seconds")
        assert len(seconds) == len(trained.result.phases[name].metrics and [r for r in rows if r[0].strip("| ") == name])
        assert all(m.value > 0 for m in seconds), name
    assert "50 % in tune:" in out and "100 % in tune:" in out
    assert "50 % in tune and audible:" in out and "100 % in tune and audible:" in out
    assert cli.main(["bench", "quality", "--run", "no-such-run", "--dataset", trained.dataset,
                     "--tracking-uri", trained.uri]) == 2
    assert "no training run of that name" in capsys.readouterr().err
