"""Budgets in steps, checkpoints in the middle of an epoch, and resuming there: one worker, CPU.

The tiny preset's autoencoder on the 20 train notes of ``train_dataset``, batches of 8 (3 steps
an epoch: 8, 8 and 4 notes), 2 epochs, every split streamed from Parquet
(``train.materialize_mb=0``), each worker writing its batches' notes to a file
(``SING_RAY_RECORD_BATCHES``):

1. uninterrupted;
2. with a checkpoint after every step, its worker SIGKILLed as step 2 of epoch 2 begins: Ray
   Train restarts it, it restores the checkpoint of step 1 and trains steps 2 and 3. The
   batches trained are the uninterrupted run's, each once, in the same order, and the final
   weights equal its weights bit for bit;
3. with a budget of 4 steps: it stops after step 1 of epoch 2, with that checkpoint as its final model, and MLflow says
   the step budget stopped it.
"""
from __future__ import annotations

from types import SimpleNamespace

import mlflow
import pytest
import torch

from sing_ray.checkpoint import load_checkpoint
from sing_ray.config import load_config
from sing_ray.train import run_pipeline
from sing_ray.train.faults import ENV_VAR
from sing_ray.train.loops import STOPPED_BY_TAG
from sing_ray.train.phase import RECORD_VAR

pytestmark = pytest.mark.slow


def _run(work, uri, dataset, name, record, *extra, faults=None):
    overrides = ["run.num_workers=1", f"run.run_name={name}", f"run.tracking_uri={uri}",
                 f"run.storage_path={work / 'runs'}", "run.max_failures=1", "train.autoencoder.epochs=2",
                 # Every split streams (no split held in memory): the order of a held split deals
                 # single notes rather than pieces of row groups, so the runs compared share this.
                 "train.materialize_mb=0", *extra]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(RECORD_VAR, str(record))
        if faults:
            mp.setenv(ENV_VAR, faults)
        else:
            mp.delenv(ENV_VAR, raising=False)
        return run_pipeline(load_config("tiny", overrides=overrides), dataset, phases=("autoencoder",),
                            register=False)


@pytest.fixture(scope="module")
def runs(train_dataset, tmp_path_factory):
    work = tmp_path_factory.mktemp("budgets")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        client = mlflow.MlflowClient(uri)
        whole = _run(work, uri, train_dataset, "whole", work / "whole.txt")
        killed = _run(work, uri, train_dataset, "killed", work / "killed.txt", "train.checkpoint_minutes=1e-6",
                      faults="kill:autoencoder:2:2:0")
        budget = _run(work, uri, train_dataset, "budget", work / "budget.txt", "train.autoencoder.steps=4")
    return SimpleNamespace(work=work, client=client, whole=whole, killed=killed, budget=budget)


def _batches(path) -> list[tuple[str, int, int, str]]:
    """(phase, epoch, step, notes) of each recorded batch, in the order trained."""
    out = []
    for line in path.read_text().splitlines():
        phase, epoch, step, _rank, *notes = line.split(" ")
        out.append((phase, int(epoch), int(step), " ".join(notes)))
    return out


def _weights(path) -> dict:
    return load_checkpoint(path)["state"]


def test_every_epoch_is_trained_in_full_in_a_seeded_order(runs):
    whole = _batches(runs.work / "whole.txt")
    assert [(e, s) for _, e, s, _ in whole] == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
    for epoch in (1, 2):
        notes = " ".join(n for _, e, _, n in whole if e == epoch).split()
        assert len(notes) == 20 and len(set(notes)) == 20, epoch
    first = " ".join(n for _, e, _, n in whole if e == 1)
    second = " ".join(n for _, e, _, n in whole if e == 2)
    assert first != second                        # a new order each epoch
    assert runs.whole.phases["autoencoder"].stopped_by == "epochs"


def test_a_run_killed_mid_epoch_resumes_with_the_remaining_batches_in_the_same_order(runs):
    marker = runs.killed.run_dir / "faults" / "kill-autoencoder-e2-s2.fired"
    assert marker.exists(), "the fault did not fire: nothing was tested"
    assert _batches(runs.work / "killed.txt") == _batches(runs.work / "whole.txt")
    phase = runs.killed.phases["autoencoder"]
    history = runs.client.get_metric_history(phase.run_id, "resumed_from_step")
    assert [m.value for m in history] == [4.0]    # 3 steps of epoch 1 and step 1 of epoch 2
    whole, killed = _weights(runs.whole.checkpoint), _weights(phase.checkpoint)
    assert whole.keys() == killed.keys()
    assert all(torch.equal(whole[k], killed[k]) for k in whole), "the resumed run's weights differ"


def test_a_step_budget_stops_mid_epoch_with_its_checkpoint_as_the_final_model(runs):
    phase = runs.budget.phases["autoencoder"]
    assert (phase.stopped_by, phase.steps, phase.epochs) == ("steps", 4, 1)
    assert _batches(runs.work / "budget.txt") == _batches(runs.work / "whole.txt")[:4]
    run = runs.client.get_run(phase.run_id)
    assert run.data.tags[STOPPED_BY_TAG] == "steps"
    assert run.data.metrics["phase_steps"] == 4 and "test_spectral_l1" in run.data.metrics
    ckpt = load_checkpoint(phase.checkpoint)
    assert (ckpt["epoch"], ckpt["extra"]["step"]) == (1, 1)
    # The step of epoch 2 it trained was validated and logged as that epoch's, marked partial.
    steps = {m.step: m.value for m in runs.client.get_metric_history(phase.run_id, "step")}
    assert steps == {2: 1.0}


def test_a_threshold_of_zero_streams_every_split(train_dataset, tmp_path):
    """``train.materialize_mb``: under it a split is read once and held (train: in each worker,
    valid and test: in Ray's object store); at 0 every split streams from Parquet."""
    from ray.data.dataset import MaterializedDataset

    from sing_ray.train.phase import phase_datasets, train_sources
    from sing_ray.train.plan import check_inputs

    for mb, held in ((1024, True), (0, False)):
        plan = check_inputs(load_config("tiny", overrides=[f"train.materialize_mb={mb}"]), train_dataset)
        scored = phase_datasets(plan, "autoencoder", tmp_path)
        assert sorted(scored) == ["test", "train_eval", "valid"]
        assert {isinstance(scored[s], MaterializedDataset) for s in scored} == {held}, mb
        (source,) = train_sources(plan, "autoencoder", tmp_path)
        assert source["cache"] is held and sum(map(sum, source["row_groups"])) == 20


def test_eval_notes_scores_the_same_even_subset_of_a_larger_split(train_dataset, tmp_path):
    """``train.eval_notes``: a split larger than it is scored on that many of its notes, spread over
    the split in name order, the same ones every time; at 0 or above the split's size, every note."""
    from sing_ray.config import ConfigError
    from sing_ray.data.dataset import read_split_metadata
    from sing_ray.train.phase import eval_subset, phase_datasets
    from sing_ray.train.plan import check_inputs

    train = sorted(read_split_metadata(train_dataset, "train", columns=("note_str",))["note_str"].tolist())
    plan = check_inputs(load_config("tiny", overrides=["train.eval_notes=5"]), train_dataset)
    picked = eval_subset(plan, "train")
    assert picked == eval_subset(plan, "train") and len(set(picked)) == 5
    assert picked == [train[int(i * len(train) / 5)] for i in range(5)] and picked[0] == train[0]
    scored = phase_datasets(plan, "autoencoder", tmp_path)
    assert sorted(scored["train_eval"].to_pandas()["note_str"]) == picked
    for split in ("valid", "test"):
        assert scored[split].count() == min(5, plan.count(split))
    for limit in (0, len(train)):
        whole = check_inputs(load_config("tiny", overrides=[f"train.eval_notes={limit}"]), train_dataset)
        assert eval_subset(whole, "train") is None
    for bad in ("-1", "1.5", "true"):
        with pytest.raises(ConfigError, match="train.eval_notes"):
            load_config("tiny", overrides=[f"train.eval_notes={bad}"])


def test_a_minutes_budget_runs_its_whole_time_and_no_more_than_a_step_beyond(train_dataset, tmp_path):
    """``train.<phase>.max_minutes``: the phase trains until that much wall-clock time has passed
    (counted once: a budget of 6 s is not spent after 3), then stops at the step in progress."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        result = _run(tmp_path, uri, train_dataset, "minutes", tmp_path / "minutes.txt",
                      "train.autoencoder.epochs=100000", "train.autoencoder.max_minutes=0.1")
    phase = result.phases["autoencoder"]
    assert phase.stopped_by == "max_minutes"
    run = mlflow.MlflowClient(uri).get_run(phase.run_id)
    assert run.data.tags[STOPPED_BY_TAG] == "max_minutes"
    # At least the budget; beyond it by one step and the epoch's validation at most.
    assert 0.1 <= run.data.metrics["phase_minutes"] < 0.1 + 0.5
