"""The phase's own resume point: what MLflow shows of an epoch can always be resumed from.

Ray Train registers a reported checkpoint a little after ``ray.train.report`` returns;
a job stopped in that window must still resume after the epoch MLflow already logged.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import ray.train
import torch

from sing_ray.config import load_config
from sing_ray.models import build_autoencoder
from sing_ray.train import loops
from sing_ray.train.loops import MODEL_FILE, Worker, resume_folder, save_resume_point


@pytest.fixture
def worker(tmp_path):
    cfg = load_config("tiny")
    return Worker(cfg=cfg, phase="autoencoder", rank=0, world_size=1, device=torch.device("cpu"),
                  loop={"run_dir": str(tmp_path / "run"), "instruments": ["bass_synthetic_000"]})


def _model(worker, epoch: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(epoch)
    model = build_autoencoder(worker.cfg.model)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def _checkpoint(worker, folder: Path, epoch: int) -> tuple[Path, torch.nn.Module]:
    """A checkpoint folder as Ray Train would hold it (registered from an earlier report)."""
    model, optimizer = _model(worker, epoch)
    folder.mkdir(parents=True)
    loops._write_checkpoint(worker, folder, model, optimizer, epoch, {"train_loss": 1.0 / epoch})
    return folder, model


def _resume_point(worker, epoch: int) -> torch.nn.Module:
    model, optimizer = _model(worker, epoch)
    save_resume_point(worker, model, optimizer, epoch, {"train_loss": 1.0 / epoch})
    return model


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_restore_prefers_the_resume_point_over_an_older_registered_checkpoint(worker, tmp_path, monkeypatch):
    registered, _ = _checkpoint(worker, tmp_path / "ray-epoch-1", 1)
    newer_model = _resume_point(worker, 2)
    monkeypatch.setattr(ray.train, "get_checkpoint", lambda: ray.train.Checkpoint.from_directory(str(registered)))

    model = build_autoencoder(worker.cfg.model)
    done, optimizer_state = loops._restore(worker, model)
    assert done.key == (2, 0) and optimizer_state is not None
    assert _same_weights(model, newer_model)


def test_restore_takes_the_registered_checkpoint_when_it_is_newer(worker, tmp_path, monkeypatch):
    _resume_point(worker, 1)
    registered, registered_model = _checkpoint(worker, tmp_path / "ray-epoch-3", 3)
    monkeypatch.setattr(ray.train, "get_checkpoint", lambda: ray.train.Checkpoint.from_directory(str(registered)))

    model = build_autoencoder(worker.cfg.model)
    assert loops._restore(worker, model)[0].epoch == 3
    assert _same_weights(model, registered_model)


def test_nothing_to_restore_starts_from_scratch(worker, monkeypatch):
    monkeypatch.setattr(ray.train, "get_checkpoint", lambda: None)
    assert loops._restore(worker, build_autoencoder(worker.cfg.model)) == (loops.Position(), None)


def test_resume_point_keeps_only_the_latest_complete_epoch(worker):
    root = resume_folder(worker.loop["run_dir"], worker.phase)
    for epoch in (1, 2, 3):
        _resume_point(worker, epoch)
    # A copy cut short by a kill is left under a temporary name and never taken for a point.
    (root / ".epoch-004.tmp-1").mkdir()
    (root / ".epoch-004.tmp-1" / MODEL_FILE).write_bytes(b"partial")
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == ["epoch-003"]
    assert [e for e, _ in loops._resume_points(worker.loop["run_dir"], worker.phase)] == [(3, 0)]


def test_a_mid_epoch_point_is_newer_than_its_epochs_start_and_older_than_its_end(worker, tmp_path, monkeypatch):
    """``train.checkpoint_minutes``: a point in epoch 3 (2 epochs done, 5 steps) replaces epoch 2's,
    restores with its position (steps, seconds, the partial epoch's sums), and gives way to epoch 3's end."""
    _resume_point(worker, 2)
    model, optimizer = _model(worker, 7)
    mid = loops.Position(epoch=2, step=5, global_step=17, seconds=42.5, loss_sum=3.0, notes=40.0, world_size=1)
    save_resume_point(worker, model, optimizer, mid, {"train_loss": 0.075})
    root = resume_folder(worker.loop["run_dir"], worker.phase)
    assert sorted(p.name for p in root.iterdir()) == ["epoch-002-step-0000005"]
    monkeypatch.setattr(ray.train, "get_checkpoint", lambda: None)
    restored = build_autoencoder(worker.cfg.model)
    assert loops._restore(worker, restored)[0] == mid
    assert _same_weights(restored, model)
    # Ray Train's registered checkpoint of epoch 2's end is older than the point in epoch 3.
    registered, _ = _checkpoint(worker, tmp_path / "ray-epoch-2", 2)
    monkeypatch.setattr(ray.train, "get_checkpoint", lambda: ray.train.Checkpoint.from_directory(str(registered)))
    assert loops._restore(worker, build_autoencoder(worker.cfg.model))[0] == mid
    _resume_point(worker, 3)
    assert sorted(p.name for p in root.iterdir()) == ["epoch-003"]


def test_a_run_takes_a_finished_runs_autoencoder_of_its_own_sizes_and_refuses_others(tmp_path):
    """``run_pipeline(autoencoder_from=...)``: Table 1's ablation starts from the spectral run's phase 1."""
    from types import SimpleNamespace
    from unittest import mock

    from sing_ray.checkpoint import save_checkpoint
    from sing_ray.config import load_config
    from sing_ray.errors import UserError
    from sing_ray.models import build_autoencoder
    from sing_ray.train.pipeline import _adopt_autoencoder

    cfg = load_config("tiny")
    source = tmp_path / "spectral"
    save_checkpoint(source / "models" / "autoencoder.pt", build_autoencoder(cfg.model), config=cfg,
                    phase="autoencoder", epoch=3)
    (source / "embeddings" / "train").mkdir(parents=True)
    (source / "embeddings" / "train" / "part-0.parquet").write_bytes(b"embeddings")
    (source / "embeddings" / "train" / "_SUCCESS").write_bytes(b"")
    client = mock.Mock()
    mine = tmp_path / "notime"
    final = _adopt_autoencoder(client, "parent", SimpleNamespace(cfg=load_config("tiny", overrides=["model.time_dim=0"])),
                               source, mine)
    assert final.read_bytes() == (source / "models" / "autoencoder.pt").read_bytes()
    assert (mine / "embeddings" / "train" / "part-0.parquet").read_bytes() == b"embeddings"
    tags = {t.key: t.value for t in client.log_batch.call_args.kwargs["tags"]}
    assert tags == {"sing_ray.phase.autoencoder": "finished", "sing_ray.checkpoint.autoencoder": str(final),
                    "sing_ray.epochs.autoencoder": "3", "sing_ray.autoencoder_from": str(source)}

    wider = SimpleNamespace(cfg=load_config("tiny", overrides=[f"model.channels={cfg.model.channels * 2}"]))
    with pytest.raises(UserError, match=rf"not an autoencoder of this config's sizes \(channels: {cfg.model.channels} there, "
                                        rf"{cfg.model.channels * 2} here\)"):
        _adopt_autoencoder(client, "parent", wider, source, tmp_path / "wider")
    with pytest.raises(UserError, match="no finished autoencoder there"):
        _adopt_autoencoder(client, "parent", wider, tmp_path / "nothing", tmp_path / "wider")
