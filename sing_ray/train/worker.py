"""A Ray Train worker's context: who it is, its config, its MLflow client, its progress files.

Split out of :mod:`sing_ray.train.loops`: what every phase's loop knows about itself
(:class:`Worker`), how it starts (:func:`setup_worker`), the collective helpers (the
non-finite guard, a small all-reduce) and the files the driver reads (progress, journal,
status).
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..config import Config, config_from_dict
from ..runtime import keep_freed_memory
from ..tracking import NOTES_PER_SECOND_METRIC
from .steps import NonFiniteLoss, check_finite

log = logging.getLogger("sing_ray.train")


@dataclass
class Worker:
    """What one Ray Train worker knows about itself and its run.

    Attributes:
        cfg: the resolved config.
        phase: the phase being trained.
        rank, world_size: this worker's place in the group.
        device: where tensors go.
        loop: the plain loop config from the driver.
        mlflow: an MlflowClient on rank 0, None elsewhere.
        autoencoder: phase 1's model, frozen (sequence phase, loaded on first use).
    """

    cfg: Config
    phase: str
    rank: int
    world_size: int
    device: torch.device
    loop: dict
    mlflow: Any = None
    autoencoder: Any = None

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    @property
    def run_id(self) -> str:
        return self.loop["run_id"]

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Log finite metrics to the phase's MLflow run (rank 0 only)."""
        if self.mlflow is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and math.isfinite(v)]
        if batch:
            self.mlflow.log_batch(self.run_id, metrics=batch)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.mlflow is not None:
            self.mlflow.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, folder: str | Path, artifact_path: str | None = None) -> None:
        if self.mlflow is not None:
            self.mlflow.log_artifacts(self.run_id, str(folder), artifact_path)


def _configure_worker_logging() -> None:
    """INFO lines from ``sing_ray`` on the worker's stderr, which Ray forwards to the driver."""
    logger = logging.getLogger("sing_ray")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def setup_worker(loop: dict) -> Worker:
    """Rebuild the config, pin threads and the device, open MLflow on rank 0."""
    import ray.train
    import ray.train.torch

    _configure_worker_logging()
    keep_freed_memory()
    ctx = ray.train.get_context()
    cfg = config_from_dict(loop["config"])
    # One intra-op thread per CPU Ray gave this worker: more would fight the other
    # workers on the same machine for cores.
    torch.set_num_threads(max(1, int(loop.get("threads", 1))))
    torch.manual_seed(cfg.train.seed)
    worker = Worker(cfg=cfg, phase=loop["phase"], rank=ctx.get_world_rank(), world_size=ctx.get_world_size(),
                    device=ray.train.torch.get_device(), loop=loop)
    if worker.is_chief and loop.get("tracking_uri"):
        import mlflow

        worker.mlflow = mlflow.MlflowClient(loop["tracking_uri"])
    return worker


def guard_for(worker: Worker) -> Callable[[torch.Tensor], None]:
    """The non-finite guard: local for one worker, all-reduced across several (see steps.py)."""
    if worker.world_size == 1:
        return check_finite
    import torch.distributed as dist

    def guard(loss: torch.Tensor) -> None:
        bad = torch.tensor([0.0 if torch.isfinite(loss.detach()).all() else 1.0], device=loss.device)
        dist.all_reduce(bad)
        if bad.item() > 0:
            raise NonFiniteLoss(f"non-finite loss on {int(bad.item())} worker(s)")

    return guard


def all_reduce(worker: Worker, values: torch.Tensor) -> torch.Tensor:
    """Sum a small float64 tensor over the workers (identity for one worker)."""
    if worker.world_size == 1:
        return values
    import torch.distributed as dist

    # NCCL reduces only device tensors; gloo takes CPU ones.
    on_device = values.to(worker.device)
    dist.all_reduce(on_device)
    return on_device.cpu()



class Progress:
    """Rank 0's progress: a line in the worker's log every few seconds, and the driver's
    progress file (epoch, step, running loss, notes/s) every second, which the driver's
    progress bar reads (:class:`sing_ray.console.PhaseProgress`)."""

    def __init__(self, worker: Worker, epoch: int, epochs: int, steps: int):
        self.worker, self.epoch, self.epochs, self.steps = worker, epoch, epochs, steps
        self.start = self.last = self.last_file = time.monotonic()
        self.every = float(worker.loop.get("log_every_s", 10.0))
        self.path = worker.loop.get("progress_path")

    def update(self, step: int, loss: float, notes: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.worker.is_chief:
            return
        rate = notes * self.worker.world_size / max(now - self.start, 1e-9)
        if self.path and (force or now - self.last_file >= 1.0):
            self.last_file = now
            write_status(self.path, {"epoch": self.epoch, "epochs": self.epochs, "step": step,
                                     "steps": self.steps, "loss": loss, NOTES_PER_SECOND_METRIC: rate})
        if not force and now - self.last < self.every:
            return
        self.last = now
        log.info("%s epoch %d/%d step %d/%d loss %.5f %.1f notes/s", self.worker.phase, self.epoch,
                 self.epochs, step, self.steps, loss, rate)


def append_journal(path: str | Path | None, record: dict) -> None:
    """Append one JSON line to the phase's epoch journal (the driver prints each as it lands)."""
    if not path:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")



def write_status(path: str | Path, status: dict) -> None:
    """Write a phase's status file atomically (JSON)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(status))
    os.replace(tmp, path)

