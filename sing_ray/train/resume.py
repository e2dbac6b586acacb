"""A phase's checkpoints and where it resumes: at an epoch's end or in the middle of an epoch.

Split out of :mod:`sing_ray.train.loops`. A checkpoint folder holds the self-describing
model (``MODEL_FILE``) and, for resuming only, ``OPTIMIZER_FILE``: the optimizer state and
the :class:`Position` the weights were saved at. Every worker can rebuild an epoch's order of
notes from the seed and the epoch (:mod:`sing_ray.train.order`), so a position is enough to
go on with the batch after it.

Why a resume point of our own beside Ray Train's checkpoints: Ray Train's controller
registers a reported checkpoint a little after ``ray.train.report`` returns, so a job stopped
in between resumes from an older one than the epochs MLflow already shows. The resume point
(``<run dir>/<phase>/resume/``) is written before MLflow hears of the epoch, and mid-epoch
checkpoints (``train.checkpoint_minutes``) are written there alone; restoring takes the newer
of the two.
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..checkpoint import load_checkpoint, save_checkpoint
from .worker import Worker

log = logging.getLogger("sing_ray.train")

MODEL_FILE = "model.pt"          # self-describing checkpoint (sing_ray.checkpoint), what MLflow gets
OPTIMIZER_FILE = "optimizer.pt"  # optimizer state and position, for resuming only
RESUME_DIR = "resume"            # run_dir/<phase>/resume/epoch-NNN[-step-NNNNNNN]: the latest checkpoint


@dataclass(frozen=True, order=True)
class Position:
    """Where a phase stands: ``epoch`` epochs done, then ``step`` batches of the next one.

    Attributes:
        epoch: epochs finished.
        step: batches of epoch ``epoch + 1`` trained (0 at an epoch's end).
        global_step: batches trained in the phase in all.
        seconds: the phase's wall-clock seconds so far (``max_minutes`` counts them).
        loss_sum, notes: the partial epoch's summed training loss and notes, over all workers.
        world_size: the workers that trained it (an epoch's order depends on it).
    """

    epoch: int = 0
    step: int = 0
    global_step: int = 0
    seconds: float = 0.0
    loss_sum: float = 0.0
    notes: float = 0.0
    world_size: int = 0

    @property
    def key(self) -> tuple[int, int]:
        return self.epoch, self.step

    @property
    def folder_name(self) -> str:
        return f"epoch-{self.epoch:03d}" + (f"-step-{self.step:07d}" if self.step else "")


def resume_folder(run_dir: str | Path, phase: str) -> Path:
    """Where a phase keeps its resume point (the latest checkpoint folder)."""
    return Path(run_dir) / phase / RESUME_DIR


def _parse_name(name: str) -> tuple[int, int] | None:
    parts = name.split("-")
    if len(parts) == 2 and parts[0] == "epoch" and parts[1].isdigit():
        return int(parts[1]), 0
    if len(parts) == 4 and parts[0] == "epoch" and parts[2] == "step" and parts[1].isdigit() and parts[3].isdigit():
        return int(parts[1]), int(parts[3])
    return None


def _resume_points(run_dir: str | Path, phase: str) -> list[tuple[tuple[int, int], Path]]:
    """The complete resume points of a phase, oldest first, as ((epoch, step), folder)."""
    points = []
    for folder in resume_folder(run_dir, phase).glob("epoch-*"):
        key = _parse_name(folder.name)
        if key is not None and (folder / MODEL_FILE).is_file() and (folder / OPTIMIZER_FILE).is_file():
            points.append((key, folder))
    return sorted(points)


def save_resume_point(worker: Worker, model, optimizer, position: Position | int, metrics: dict) -> Path:
    """Write a checkpoint folder as the phase's resume point, then drop older ones.

    The folder appears under its final name only when complete (written, then
    renamed), so a job killed at any moment leaves the previous point or the new
    one, never half of one. At an epoch's end it is also the folder reported to Ray Train.

    Args:
        position: where the weights stand (an int: that many epochs done).
    Returns:
        the folder (``MODEL_FILE`` and ``OPTIMIZER_FILE`` in it).
    """
    if isinstance(position, int):
        position = Position(epoch=position)
    run_dir = worker.loop["run_dir"]
    root = resume_folder(run_dir, worker.phase)
    final = root / position.folder_name
    tmp = root / f".{position.folder_name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _write_checkpoint(worker, tmp, model, optimizer, position, metrics)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for older, folder in _resume_points(run_dir, worker.phase):
        if older < position.key:
            shutil.rmtree(folder, ignore_errors=True)
    return final


def _position(state: dict) -> Position:
    """The position of an optimizer file's state (files of before positions: an epoch's end)."""
    saved = state.get("position") or {}
    return Position(**{**saved, "epoch": int(state["epoch"])})


def _restore(worker: Worker, model: torch.nn.Module) -> tuple[Position, dict | None]:
    """Load the latest checkpoint into ``model``: Ray Train's or the resume point, the newer.

    Returns (its position, the optimizer state); (``Position()``, None) with nothing to restore.
    """
    import ray.train

    points = _resume_points(worker.loop["run_dir"], worker.phase)
    point_key = points[-1][0] if points else (-1, 0)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = torch.load(Path(folder) / OPTIMIZER_FILE, map_location="cpu", weights_only=True)
            position = _position(state)
            if position.key >= point_key:
                model.load_state_dict(load_checkpoint(Path(folder) / MODEL_FILE)["state"])
                return position, state["optimizer"]
        if worker.is_chief:
            log.info("%s: Ray Train's latest registered checkpoint is epoch %d; the resume point "
                     "is epoch %d step %d, which is used", worker.phase, position.epoch, *point_key)
    if not points:
        return Position(), None
    folder = points[-1][1]
    state = torch.load(folder / OPTIMIZER_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(load_checkpoint(folder / MODEL_FILE)["state"])
    return _position(state), state["optimizer"]


def _write_checkpoint(worker: Worker, folder: Path, model, optimizer, position: Position | int,
                      metrics: dict) -> Path:
    """Write a checkpoint folder: the self-describing model, the optimizer state and the position."""
    if isinstance(position, int):
        position = Position(epoch=position)
    extra = {"instruments": list(worker.loop["instruments"]), "dataset": worker.loop.get("dataset", ""),
             "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}}
    if position.step:
        extra["step"] = position.step
    path = save_checkpoint(folder / MODEL_FILE, model, config=worker.cfg, phase=worker.phase, epoch=position.epoch,
                           extra=extra)
    torch.save({"epoch": position.epoch, "position": asdict(position), "optimizer": optimizer.state_dict()},
               folder / OPTIMIZER_FILE)
    return path


def copy_model_file(checkpoint_folder: str | Path, dest: str | Path) -> Path:
    """Copy the self-describing model of a checkpoint folder to ``dest`` (atomically)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.copyfile(Path(checkpoint_folder) / MODEL_FILE, tmp)
    os.replace(tmp, dest)
    return dest
