"""Ray Train worker entry points, one per phase: ``train_loop_autoencoder``, ``_sequence``, ``_finetune``.

Each loop unpacks the plain dict the driver built (:func:`sing_ray.train.phase.make_loop_config`),
rebuilds the config dataclass, restores from ``ray.train.get_checkpoint()`` when Ray
Train restarts it (a worker died) or when the pipeline run is resumed, and then, per epoch:

1. trains on its shard of ``train`` (``ray.train.get_dataset_shard``), one of the
   plain ``*_step`` functions of :mod:`sing_ray.train.steps` per batch;
2. validates on ``valid`` (wav MSE, spectral L1; the sequence phase also the
   embedding MSE), every worker scoring every ``world_size``-th batch, summed with
   one all-reduce;
3. rank 0 writes the epoch's checkpoint as the phase's resume point in the run
   folder, logs metrics and the checkpoint to the phase's MLflow run, and every rank
   calls ``ray.train.report`` (rank 0 with that folder, which Ray copies).

Why a resume point of our own: Ray Train's controller registers a reported checkpoint
a little after ``ray.train.report`` returns, so a job stopped in between resumes from
an older one than the epochs MLflow already shows, and those epochs would be trained
and logged twice. The resume point is written before MLflow hears of the epoch, so
whatever MLflow shows can be resumed from; restoring takes the newer of the two.

After the last epoch the phase is scored on ``test`` and on its train split
(Table 1's two columns), rank 0 logs a few generated notes beside their
references and a spectrogram comparison, and the loops report a final
``status: finished``. A non-finite loss makes every worker stop at the same step
and report ``status: diverged`` *without* a checkpoint, so the last good one stays
the latest; the driver turns that into :class:`~sing_ray.train.phase.NonFiniteLossError`.
The loops return normally then: raising would make Ray Train retry a failure
that is deterministic.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..checkpoint import load_checkpoint, load_model, save_checkpoint, sing_from_phases
from ..config import Config, config_from_dict
from ..nsynth import SILENT_PEAK
from ..losses import FrameLoss, build_loss
from ..models import build_autoencoder, build_sequence_generator
from ..models.partials import HARMONIC_SCALE
from ..runtime import keep_freed_memory
from ..tracking import (DIVERGED_TAG, EPOCH_SECONDS_METRIC, NOTES_PER_SECOND_METRIC, SILENT_OUTPUT_TAG,
                        epoch_checkpoint_artifact)
from .faults import FaultInjector
from .steps import (MetricSums, NonFiniteLoss, autoencoder_step, check_finite, finetune_step, sequence_step,
                    velocity_indices)

log = logging.getLogger("sing_ray.train")

MODEL_FILE = "model.pt"          # self-describing checkpoint (sing_ray.checkpoint), what MLflow gets
OPTIMIZER_FILE = "optimizer.pt"  # optimizer state and epoch, for resuming only
RESUME_DIR = "resume"            # run_dir/<phase>/resume/epoch-NNN: the latest epoch's checkpoint


# ---------------------------------------------------------------------------
# The worker's context
# ---------------------------------------------------------------------------


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


def _guard_for(worker: Worker) -> Callable[[torch.Tensor], None]:
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


def _all_reduce(worker: Worker, values: torch.Tensor) -> torch.Tensor:
    """Sum a small float64 tensor over the workers (identity for one worker)."""
    if worker.world_size == 1:
        return values
    import torch.distributed as dist

    # NCCL reduces only device tensors; gloo takes CPU ones.
    on_device = values.to(worker.device)
    dist.all_reduce(on_device)
    return on_device.cpu()


def _poisoned(loss_fn: Callable) -> Callable:
    """A loss function whose value is NaN (fault injection), keeping the graph intact."""
    return lambda *args: loss_fn(*args) * float("nan")


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------


def _long(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.asarray(array).astype(np.int64)).to(device)


def _symbols(batch: dict, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(instrument, pitch, velocity index), each (B,) long, from a numpy batch."""
    return (_long(batch["instrument"], device), _long(batch["pitch"], device),
            velocity_indices(_long(batch["velocity"], device)))


def _wav(batch: dict, device: torch.device) -> torch.Tensor:
    """(B, T) float32 waveforms from a numpy batch."""
    # A copy: Ray hands out read-only views of its blocks, which torch must not alias.
    return torch.from_numpy(np.array(batch["wav"], dtype=np.float32)).to(device)


def _train_batches(worker: Worker, epoch: int):
    """This worker's shard of ``train`` for one epoch, locally shuffled, as numpy batches."""
    import ray.train

    shard = ray.train.get_dataset_shard("train")
    batch = worker.loop["batch_size"]
    return shard.iter_batches(batch_size=batch, batch_format="numpy", drop_last=False,
                              local_shuffle_buffer_size=max(4 * batch, 16),
                              local_shuffle_seed=worker.cfg.train.seed + epoch)


def _eval_batches(worker: Worker, name: str):
    """Batches of dataset ``name`` this worker scores.

    ``valid`` and ``test`` reach every worker whole and each scores every
    ``world_size``-th batch, so every note counts exactly once; ``train_eval`` is
    split by Ray like ``train`` (its equal split may leave out up to
    ``world_size - 1`` notes, which a whole train split cannot notice).
    """
    import ray.train

    if name not in worker.loop["datasets"]:
        return  # an empty split: the driver gave no dataset
    data = ray.train.get_dataset_shard(name)
    strided = name != "train_eval"
    for i, batch in enumerate(data.iter_batches(batch_size=worker.loop["batch_size"], batch_format="numpy")):
        if not strided or i % worker.world_size == worker.rank:
            yield batch


# ---------------------------------------------------------------------------
# The phases
# ---------------------------------------------------------------------------


@dataclass
class PhaseSpec:
    """What differs between phases.

    Attributes:
        build: ``build(worker) -> model`` with the phase's initial weights.
        train_batch: ``train_batch(model, optimizer, batch, loss_fn, guard, worker) -> loss``.
        predict: ``predict(model, batch, worker) -> (generated (B, T), embedding_mse (B,) or None)``.
        loss_fn: the training loss.
        with_embedding: whether evaluation reports the embedding MSE (sequence phase).
    """

    build: Callable[[Worker], torch.nn.Module]
    train_batch: Callable[..., torch.Tensor]
    predict: Callable[..., tuple[torch.Tensor, torch.Tensor | None]]
    loss_fn: Callable
    with_embedding: bool = False


def _frozen_autoencoder(worker: Worker):
    """The autoencoder of phase 1, frozen, cached on the worker."""
    if worker.autoencoder is None:
        model, _ = load_model(worker.loop["init"]["autoencoder"], map_location=worker.device)
        for p in model.parameters():
            p.requires_grad_(False)
        worker.autoencoder = model.eval()
    return worker.autoencoder


def _autoencoder_spec(worker: Worker) -> PhaseSpec:
    t = worker.cfg.train

    def train_batch(model, optimizer, batch, loss_fn, guard, w):
        return autoencoder_step(model, optimizer, _wav(batch, w.device), loss_fn, guard, crop=t.autoencoder.crop,
                                pitch=_symbols(batch, w.device)[1])

    def predict(model, batch, w):
        return model(_wav(batch, w.device), _symbols(batch, w.device)[1]), None

    return PhaseSpec(build=lambda w: build_autoencoder(w.cfg.model), train_batch=train_batch, predict=predict,
                     loss_fn=build_loss(t, phase="autoencoder"))


def _sequence_spec(worker: Worker) -> PhaseSpec:
    def train_batch(model, optimizer, batch, loss_fn, guard, w):
        target = torch.from_numpy(np.array(batch["embedding"], dtype=np.float32)).to(w.device)
        return sequence_step(model, optimizer, *_symbols(batch, w.device), target,
                             w.cfg.train.truncated_steps, loss_fn, guard)

    def predict(model, batch, w):
        # SING before fine-tuning: the LSTM's frames through phase 1's decoder.
        autoencoder = _frozen_autoencoder(w)
        symbols = _symbols(batch, w.device)
        frames = model(*symbols)
        wav = _wav(batch, w.device)
        embedding_mse = (frames - autoencoder.encode(wav, symbols[1])).square().mean(dim=(1, 2))
        return autoencoder.decode(frames, symbols[1]), embedding_mse

    def build(w):
        return build_sequence_generator(w.cfg.model, num_instruments=len(w.loop["instruments"]))

    return PhaseSpec(build=build, train_batch=train_batch, predict=predict,
                     loss_fn=FrameLoss(worker.cfg.train.sequence_audible, HARMONIC_SCALE),
                     with_embedding=True)


def _finetune_spec(worker: Worker) -> PhaseSpec:
    t = worker.cfg.train

    def build(w):
        # Start from phase 2's LSTM and phase 1's decoder.
        return sing_from_phases(w.loop["init"]["sequence"], w.loop["init"]["autoencoder"])

    def train_batch(model, optimizer, batch, loss_fn, guard, w):
        return finetune_step(model, optimizer, *_symbols(batch, w.device), _wav(batch, w.device), loss_fn, guard,
                             crop=t.finetune.crop)

    def predict(model, batch, w):
        return model(*_symbols(batch, w.device)), None

    return PhaseSpec(build=build, train_batch=train_batch, predict=predict,
                     loss_fn=build_loss(t, phase="finetune"))


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------


def resume_folder(run_dir: str | Path, phase: str) -> Path:
    """Where a phase keeps its resume point (the latest epoch's checkpoint folder)."""
    return Path(run_dir) / phase / RESUME_DIR


def _resume_points(run_dir: str | Path, phase: str) -> list[tuple[int, Path]]:
    """The complete resume points of a phase, oldest first, as (epoch, folder)."""
    points = []
    for folder in resume_folder(run_dir, phase).glob("epoch-*"):
        suffix = folder.name[len("epoch-"):]
        if suffix.isdigit() and (folder / MODEL_FILE).is_file() and (folder / OPTIMIZER_FILE).is_file():
            points.append((int(suffix), folder))
    return sorted(points)


def save_resume_point(worker: Worker, model, optimizer, epoch: int, metrics: dict) -> Path:
    """Write an epoch's checkpoint folder as the phase's resume point, then drop older ones.

    The folder appears under its final name only when complete (written, then
    renamed), so a job killed at any moment leaves the previous point or the new
    one, never half of one. It is also the folder reported to Ray Train.

    Returns:
        the folder (``MODEL_FILE`` and ``OPTIMIZER_FILE`` in it).
    """
    run_dir = worker.loop["run_dir"]
    root = resume_folder(run_dir, worker.phase)
    final = root / f"epoch-{epoch:03d}"
    tmp = root / f".epoch-{epoch:03d}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _write_checkpoint(worker, tmp, model, optimizer, epoch, metrics)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for older, folder in _resume_points(run_dir, worker.phase):
        if older < epoch:
            shutil.rmtree(folder, ignore_errors=True)
    return final


def _restore(worker: Worker, model: torch.nn.Module) -> tuple[int, dict | None]:
    """Load the latest checkpoint into ``model``: Ray Train's or the resume point, the newer.

    Returns (epochs done, optimizer state).
    """
    import ray.train

    points = _resume_points(worker.loop["run_dir"], worker.phase)
    point_epoch = points[-1][0] if points else -1
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = torch.load(Path(folder) / OPTIMIZER_FILE, map_location="cpu", weights_only=True)
            if int(state["epoch"]) >= point_epoch:
                model.load_state_dict(load_checkpoint(Path(folder) / MODEL_FILE)["state"])
                return int(state["epoch"]), state["optimizer"]
        if worker.is_chief:
            log.info("%s: Ray Train's latest registered checkpoint is epoch %d; the resume point "
                     "is epoch %d, which is used", worker.phase, int(state["epoch"]), point_epoch)
    if not points:
        return 0, None
    folder = points[-1][1]
    state = torch.load(folder / OPTIMIZER_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(load_checkpoint(folder / MODEL_FILE)["state"])
    return int(state["epoch"]), state["optimizer"]


def _write_checkpoint(worker: Worker, folder: Path, model, optimizer, epoch: int, metrics: dict) -> Path:
    """Write the Ray checkpoint folder: the self-describing model and the optimizer state."""
    extra = {"instruments": list(worker.loop["instruments"]), "dataset": worker.loop.get("dataset", ""),
             "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}}
    path = save_checkpoint(folder / MODEL_FILE, model, config=worker.cfg, phase=worker.phase, epoch=epoch,
                           extra=extra)
    torch.save({"epoch": epoch, "optimizer": optimizer.state_dict()}, folder / OPTIMIZER_FILE)
    return path


# ---------------------------------------------------------------------------
# Evaluation and examples
# ---------------------------------------------------------------------------


@torch.no_grad()
def evaluate(worker: Worker, model, spec: PhaseSpec, name: str, prefix: str,
             examples: list | None = None) -> dict[str, float]:
    """Table 1's metrics of ``model`` on dataset ``name``, summed over the workers.

    Args:
        name: the dataset given to the trainer (``valid``, ``test``, ``train_eval``).
        prefix: of the metric names (``valid`` -> ``valid_wav_mse``...).
        examples: if a list (rank 0), the first ``train.num_examples`` notes are
            appended as ``(note_str, reference (T,), generated (T,))``.
    Returns:
        ``{prefix_wav_mse, prefix_spectral_l1[, prefix_embedding_mse]}``; empty for an empty split.
    """
    t = worker.cfg.train
    # Score with the bare module: workers score different numbers of batches, and
    # DDP's forward is meant to run in lockstep across them.
    model = getattr(model, "module", model)
    was_training = model.training
    model.eval()
    sums = MetricSums()
    for batch in _eval_batches(worker, name):
        generated, embedding_mse = spec.predict(model, batch, worker)
        reference = _wav(batch, worker.device)
        sums.add(generated, reference, t.n_fft, t.hop_length, embedding_mse)
        if examples is not None and len(examples) < t.num_examples:
            for i in range(min(len(generated), t.num_examples - len(examples))):
                examples.append((str(batch["note_str"][i]), reference[i].cpu().numpy(),
                                 generated[i].float().cpu().numpy()))
    model.train(was_training)
    total = _all_reduce(worker, sums.as_tensor())
    return MetricSums.means(total, prefix, spec.with_embedding)


def log_examples(worker: Worker, examples: list) -> None:
    """Rank 0: generated notes beside their references (WAV) and a spectrogram comparison (PNG)."""
    if worker.mlflow is None or not examples:
        return
    from ..figures import plot_spectrogram_grid
    from ..nsynth_io import write_note_wav

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "examples"
        for note_str, reference, generated in examples:
            write_note_wav(folder / f"{note_str}-reference.wav", np.clip(reference, -1, 1))
            write_note_wav(folder / f"{note_str}-generated.wav", np.clip(generated, -1, 1))
        try:
            plot_spectrogram_grid(np.stack([e[1] for e in examples]), np.stack([e[2] for e in examples]),
                                  [e[0] for e in examples], Path(tmp) / "spectrograms.png",
                                  n_fft=worker.cfg.train.n_fft, hop_length=worker.cfg.train.hop_length)
            worker.log_artifact(Path(tmp) / "spectrograms.png")
        except (ValueError, RuntimeError) as err:  # a figure must never fail a phase
            log.warning("%s: no spectrogram figure (%s)", worker.phase, err)
        worker.log_artifacts(folder, "examples")


def _warn_if_silent(worker: Worker, examples: list | None) -> str | None:
    """Rank 0: say so, and tag the phase's run, when every generated example is silent.

    The spectral loss compares log(1 + |STFT|^2), which has no gradient at silence: a
    model pushed there early (every epoch then scores exactly the silence baseline)
    never leaves. The metrics alone do not make that obvious to a person.
    """
    if not examples:
        return None
    peaks = [float(np.abs(e[2]).max()) for e in examples]
    if max(peaks) >= SILENT_PEAK:
        return None
    message = (f"{worker.phase}: all {len(peaks)} generated examples are silent (peak {max(peaks):.1e}): the model "
               "collapsed to silence. Train longer at a lower learning rate, or with --loss wav")
    log.warning("%s", message)
    if worker.mlflow is not None:
        worker.mlflow.set_tag(worker.run_id, SILENT_OUTPUT_TAG, "true")
    return message


# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------


class _Progress:
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
    import json

    if not path:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def _report(worker: Worker, metrics: dict, checkpoint_folder: Path | None = None) -> None:
    import ray.train

    checkpoint = ray.train.Checkpoint.from_directory(str(checkpoint_folder)) if checkpoint_folder else None
    # Ray copies the folder into its storage; the resume point must stay where it is.
    ray.train.report(metrics, checkpoint=checkpoint, delete_local_checkpoint_after_upload=False)


def run_phase(loop: dict, make_spec: Callable[[Worker], PhaseSpec]) -> None:
    """The loop every phase shares (see the module docstring)."""
    import ray.train.torch

    worker = setup_worker(loop)
    cfg, phase = worker.cfg, worker.phase
    epochs = cfg.train.phase(phase).epochs
    spec = make_spec(worker)
    raw = spec.build(worker)
    done, optimizer_state = _restore(worker, raw)
    if done:
        log.info("%s: rank %d resumes after epoch %d (checkpoint restored)", phase, worker.rank, done)
    model = ray.train.torch.prepare_model(raw, parallel_strategy_kwargs={"forward_sync_buffers": False})
    lr = cfg.train.phase(phase).lr
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
        # The state dict brings back the old learning rate; a resumed run may have
        # lowered it on purpose (after a divergence), so the config's value wins.
        for group in optimizer.param_groups:
            group["lr"] = lr
    if done and worker.is_chief:
        worker.log_metrics({"resumed_from_epoch": done}, step=done)
        # The driver says so on the terminal: a re-run resuming, or workers restarted after a failure.
        append_journal(loop.get("journal_path"), {"event": "restored", "epoch": done, "epochs": epochs})

    guard = _guard_for(worker)
    run_dir = loop["run_dir"]
    injector = FaultInjector(loop.get("faults", []), phase, worker.rank, worker.world_size,
                             os.path.join(run_dir, "faults"), loop.get("snapshot_path"))
    steps_per_epoch = max(1, math.ceil(loop["num_train_notes"] / (worker.world_size * loop["batch_size"])))
    metrics: dict[str, Any] = {"epoch": done}

    for epoch in range(done + 1, epochs + 1):
        for group in optimizer.param_groups:           # train.<phase>.lr_final: a cosine decay
            group["lr"] = cfg.train.phase(phase).epoch_lr(epoch)
        model.train()
        progress = _Progress(worker, epoch, epochs, steps_per_epoch)
        started = time.monotonic()
        loss_sum, notes, step = 0.0, 0, 0
        diverged = None
        for batch in _train_batches(worker, epoch):
            step += 1
            injector.maybe_kill(epoch, step)
            loss_fn = _poisoned(spec.loss_fn) if injector.poison(epoch, step) else spec.loss_fn
            try:
                loss = spec.train_batch(model, optimizer, batch, loss_fn, guard, worker)
            except NonFiniteLoss as err:
                diverged = {"status": "diverged", "epoch": epoch - 1, "diverged_epoch": epoch,
                            "diverged_step": step, "error": str(err)}
                break
            n = len(batch["instrument"])
            loss_sum += float(loss) * n
            notes += n
            progress.update(step, loss_sum / max(notes, 1), notes)
        if diverged is not None:
            if worker.is_chief:
                log.error("%s: non-finite loss at epoch %d step %d; stopping, the last good checkpoint is "
                          "epoch %d's", phase, epoch, diverged["diverged_step"], epoch - 1)
                if worker.mlflow is not None:
                    worker.mlflow.set_tag(worker.run_id, DIVERGED_TAG,
                                          f"epoch {epoch} step {diverged['diverged_step']}")
                # Ray Train's result carries the metrics of the latest *checkpoint*, and this
                # report must not have one (the last good checkpoint has to stay the latest),
                # so the driver learns of the divergence from this file.
                write_status(loop["status_path"], diverged)
            _report(worker, diverged)
            return
        seconds = time.monotonic() - started
        progress.update(step, loss_sum / max(notes, 1), notes, force=True)
        totals = _all_reduce(worker, torch.tensor([loss_sum, notes], dtype=torch.float64))
        metrics = {"status": "running", "epoch": epoch,
                   "train_loss": float(totals[0] / totals[1]) if totals[1] else math.nan,
                   "train_notes": float(totals[1]),
                   NOTES_PER_SECOND_METRIC: float(totals[1]) / max(seconds, 1e-9), EPOCH_SECONDS_METRIC: seconds,
                   "lr": float(optimizer.param_groups[0]["lr"])}
        metrics.update(evaluate(worker, model, spec, "valid", "valid"))
        folder = None
        if worker.is_chief:
            folder = save_resume_point(worker, model, optimizer, epoch, metrics)
            worker.log_metrics({k: v for k, v in metrics.items() if k not in ("epoch", "status")}, step=epoch)
            worker.log_artifact(folder / MODEL_FILE, epoch_checkpoint_artifact(epoch))
            log.info("%s epoch %d/%d: %s", phase, epoch, epochs, _format(metrics))
            append_journal(loop.get("journal_path"), {"epoch": epoch, "epochs": epochs, **metrics})
        _report(worker, metrics, folder)

    # The end of the phase: Table 1's metrics on test and on the train split, and examples.
    examples: list | None = [] if worker.is_chief else None
    final = {k: v for k, v in metrics.items() if k != "status"}
    final.update(evaluate(worker, model, spec, "test", "test", examples))
    final.update(evaluate(worker, model, spec, "train_eval", "train"))
    final.update({"status": "finished", "epoch": max(done, epochs), "resumed_from_epoch": done})
    if worker.is_chief:
        worker.log_metrics({k: v for k, v in final.items() if k.startswith(("test_", "train_"))
                            and k != "train_loss"}, step=max(done, epochs))
        log_examples(worker, examples)
        silent = _warn_if_silent(worker, examples)
        log.info("%s finished: %s", phase, _format(final))
        append_journal(loop.get("journal_path"), {"epochs": epochs, **final, "warnings": [silent] if silent else []})
    with tempfile.TemporaryDirectory() as tmp:
        folder = None
        if worker.is_chief:
            # The final report carries a checkpoint (the same weights as the last epoch's,
            # or the initial ones when epochs = 0) because Ray Train's result holds the
            # metrics of the latest checkpoint: this way they are the final scores.
            folder = Path(tmp)
            _write_checkpoint(worker, folder, model, optimizer, final["epoch"], final)
        _report(worker, final, folder)


def write_status(path: str | Path, status: dict) -> None:
    """Write a phase's status file atomically (JSON)."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(status))
    os.replace(tmp, path)


def _format(metrics: dict) -> str:
    keys = [k for k in metrics if isinstance(metrics[k], float)]
    return ", ".join(f"{k} {metrics[k]:.5g}" for k in keys)


def train_loop_autoencoder(config: dict) -> None:
    """Ray Train entry of phase 1 (encoder + decoder on waveforms). Args: the driver's loop config."""
    run_phase(config, _autoencoder_spec)


def train_loop_sequence(config: dict) -> None:
    """Ray Train entry of phase 2 (LSTM on precomputed embeddings, truncated BPTT)."""
    run_phase(config, _sequence_spec)


def train_loop_finetune(config: dict) -> None:
    """Ray Train entry of phase 3 (LSTM + decoder end to end on waveforms)."""
    run_phase(config, _finetune_spec)


TRAIN_LOOPS = {"autoencoder": train_loop_autoencoder, "sequence": train_loop_sequence,
               "finetune": train_loop_finetune}


def copy_model_file(checkpoint_folder: str | Path, dest: str | Path) -> Path:
    """Copy the self-describing model of a Ray checkpoint folder to ``dest`` (atomically)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.copyfile(Path(checkpoint_folder) / MODEL_FILE, tmp)
    os.replace(tmp, dest)
    return dest
