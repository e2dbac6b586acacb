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

import functools
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..checkpoint import load_model, sing_from_phases
from ..losses import FrameLoss, build_loss
from ..models import build_autoencoder, build_sequence_generator
from ..models.partials import HARMONIC_SCALE
from ..nsynth import SILENT_PEAK
from ..tracking import (DIVERGED_TAG, EPOCH_SECONDS_METRIC, NOTES_PER_SECOND_METRIC, SILENT_OUTPUT_TAG,
                        epoch_checkpoint_artifact)
from .faults import FaultInjector
from .order import NoteReader, plan_epoch
from .resume import (MODEL_FILE, OPTIMIZER_FILE, RESUME_DIR, Position, _restore, _resume_points,  # noqa: F401
                     _write_checkpoint, copy_model_file, resume_folder, save_resume_point)
from .steps import MetricSums, NonFiniteLoss, autoencoder_step, finetune_step, sequence_step, velocity_indices
from .worker import (Progress, Worker, all_reduce, append_journal, guard_for, setup_worker,  # noqa: F401
                     write_status)

log = logging.getLogger("sing_ray.train")

# The phase run's tag saying what ended it: "epochs", "steps" or "max_minutes" (its budgets).
STOPPED_BY_TAG = "sing_ray.stopped_by"


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
    total = all_reduce(worker, sums.as_tensor())
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


def _report(worker: Worker, metrics: dict, checkpoint_folder: Path | None = None) -> None:
    import ray.train

    checkpoint = ray.train.Checkpoint.from_directory(str(checkpoint_folder)) if checkpoint_folder else None
    # Ray copies the folder into its storage; the resume point must stay where it is.
    ray.train.report(metrics, checkpoint=checkpoint, delete_local_checkpoint_after_upload=False)



# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------


@dataclass
class _Epoch:
    """The running sums of the epoch in progress (this worker's; a mid-epoch checkpoint's are all workers')."""

    loss_sum: float = 0.0
    notes: int = 0


def _step_seed(seed: int, epoch: int, step: int, rank: int) -> int:
    """The torch seed of one step (random crops, dropout): a function of where the step is, so that a
    resumed run draws what the uninterrupted one would have."""
    return int(np.random.SeedSequence([seed, epoch, step, rank]).generate_state(1)[0])


def _record_batch(path: str | None, phase: str, epoch: int, step: int, rank: int, batch: dict) -> None:
    """Append the batch's notes to ``path`` (``SING_RAY_RECORD_BATCHES``: tests and drills)."""
    if path:
        with open(path, "a") as handle:
            handle.write(f"{phase} {epoch} {step} {rank} {' '.join(map(str, batch['note_str']))}\n")


def _budget_reached(worker: Worker, p, position: Position, last_checkpoint: float,
                    minutes: float) -> tuple[str | None, bool]:
    """(what stops the phase now: "steps", "max_minutes" or None; whether a timed checkpoint is due).

    ``position`` is where the phase is now: its ``seconds`` are the phase's wall-clock seconds
    so far, those of earlier sessions included (what ``max_minutes`` counts). The clocks of the
    workers differ: with several, rank 0's decision is everyone's (one all-reduce a step, only
    when a budget or checkpoint is timed).
    """
    stop = "steps" if p.steps and position.global_step >= p.steps else None
    if not p.max_minutes and not minutes:
        return stop, False
    now = time.monotonic()
    flags = torch.tensor([float(bool(p.max_minutes) and position.seconds >= 60 * p.max_minutes),
                          float(bool(minutes) and now - last_checkpoint >= 60 * minutes)], dtype=torch.float64)
    if worker.world_size > 1:
        flags = all_reduce(worker, flags * float(worker.is_chief))
    return stop or ("max_minutes" if flags[0] > 0 else None), bool(flags[1] > 0)


def run_phase(loop: dict, make_spec: Callable[[Worker], PhaseSpec]) -> None:
    """The loop every phase shares (see the module docstring)."""
    import ray.train.torch

    worker = setup_worker(loop)
    cfg, phase = worker.cfg, worker.phase
    p = cfg.train.phase(phase)
    epochs = p.epochs
    spec = make_spec(worker)
    raw = spec.build(worker)
    position, optimizer_state = _restore(worker, raw)
    done = position.epoch
    if position.key > (0, 0):
        log.info("%s: rank %d resumes after epoch %d step %d (checkpoint restored)", phase, worker.rank,
                 position.epoch, position.step)
    if position.world_size and position.world_size != worker.world_size and position.step and worker.is_chief:
        log.warning("%s: epoch %d was begun on %d workers and goes on on %d: the rest of its order is that of "
                    "%d workers", phase, done + 1, position.world_size, worker.world_size, worker.world_size)
    model = ray.train.torch.prepare_model(raw, parallel_strategy_kwargs={"forward_sync_buffers": False})
    optimizer = torch.optim.Adam(model.parameters(), lr=p.lr)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
        # The state dict brings back the old learning rate; a resumed run may have
        # lowered it on purpose (after a divergence), so the config's value wins.
        for group in optimizer.param_groups:
            group["lr"] = p.lr
    if position.key > (0, 0) and worker.is_chief:
        worker.log_metrics({"resumed_from_epoch": done, "resumed_from_step": position.global_step}, step=done)
        # The driver says so on the terminal: a re-run resuming, or workers restarted after a failure.
        append_journal(loop.get("journal_path"), {"event": "restored", "epoch": done, "epochs": epochs,
                                                  "step": position.step})

    guard = guard_for(worker)
    run_dir = loop["run_dir"]
    injector = FaultInjector(loop.get("faults", []), phase, worker.rank, worker.world_size,
                             os.path.join(run_dir, "faults"), loop.get("snapshot_path"))
    reader = NoteReader(loop["train_sources"])
    plan_of = functools.partial(plan_epoch, loop["train_sources"], cfg.train.seed, rank=worker.rank,
                                world_size=worker.world_size, batch_size=loop["batch_size"],
                                window_rows=max(4 * loop["batch_size"], 256))
    minutes = cfg.train.checkpoint_minutes
    started = last_checkpoint = time.monotonic()
    metrics: dict[str, Any] = {"epoch": done}
    stopped_by = "epochs" if done >= epochs else None
    # The partial epoch a mid-epoch checkpoint left: its sums are all workers', kept by rank 0.
    resumed = _Epoch(position.loss_sum, int(position.notes)) if worker.is_chief else _Epoch()
    skip = position.step

    def now_position(epoch: int, step: int, totals: _Epoch) -> Position:
        return Position(epoch=epoch, step=step, global_step=global_step, world_size=worker.world_size,
                        seconds=position.seconds + time.monotonic() - started,
                        loss_sum=totals.loss_sum, notes=float(totals.notes))

    global_step, last = position.global_step, position
    for epoch in range(done + 1, epochs + 1):
        if stopped_by:
            break
        plan = plan_of(epoch=epoch)
        if not p.steps:                                # train.<phase>.lr_final: a cosine decay
            for group in optimizer.param_groups:
                group["lr"] = p.epoch_lr(epoch)
        model.train()
        progress = Progress(worker, epoch, epochs, plan.steps)
        epoch_started = time.monotonic()
        sums, step = (resumed, skip) if skip else (_Epoch(), 0)
        session_notes, diverged = 0, None
        for batch in reader.batches(plan, skip=step):
            step += 1
            global_step += 1
            injector.maybe_kill(epoch, step)
            _record_batch(loop.get("record_batches"), phase, epoch, step, worker.rank, batch)
            if p.steps:
                for group in optimizer.param_groups:
                    group["lr"] = p.step_lr(epoch, global_step)
            torch.manual_seed(_step_seed(cfg.train.seed, epoch, step, worker.rank))
            loss_fn = _poisoned(spec.loss_fn) if injector.poison(epoch, step) else spec.loss_fn
            try:
                loss = spec.train_batch(model, optimizer, batch, loss_fn, guard, worker)
            except NonFiniteLoss as err:
                diverged = {"status": "diverged", "epoch": epoch - 1, "diverged_epoch": epoch,
                            "diverged_step": step, "error": str(err)}
                break
            n = len(batch["instrument"])
            sums.loss_sum += float(loss) * n
            sums.notes += n
            session_notes += n
            progress.update(step, sums.loss_sum / max(sums.notes, 1), session_notes)
            if step >= plan.steps:
                break                                  # the epoch's end checkpoints
            stop, due = _budget_reached(worker, p, now_position(epoch - 1, step, sums), last_checkpoint, minutes)
            if stop:
                stopped_by = stop
                break
            if due:
                totals = all_reduce(worker, torch.tensor([sums.loss_sum, sums.notes], dtype=torch.float64))
                if worker.is_chief:
                    save_resume_point(worker, model, optimizer,
                                      now_position(epoch - 1, step, _Epoch(float(totals[0]), int(totals[1]))),
                                      {"train_loss": float(totals[0] / max(float(totals[1]), 1.0))})
                    log.info("%s: checkpoint at epoch %d step %d/%d (every %g min)", phase, epoch, step,
                             plan.steps, minutes)
                last_checkpoint = time.monotonic()
        skip = 0
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
            reader.close()
            _report(worker, diverged)
            return
        complete = step >= plan.steps
        if complete and not stopped_by:
            stop, _ = _budget_reached(worker, p, now_position(epoch, 0, sums), last_checkpoint, 0.0)
            stopped_by = stop or ("epochs" if epoch >= epochs else None)
        seconds = time.monotonic() - epoch_started
        progress.update(step, sums.loss_sum / max(sums.notes, 1), session_notes, force=True)
        totals = all_reduce(worker, torch.tensor([sums.loss_sum, sums.notes], dtype=torch.float64))
        metrics = {"status": "running", "epoch": epoch if complete else epoch - 1,
                   "train_loss": float(totals[0] / totals[1]) if totals[1] else math.nan,
                   "train_notes": float(totals[1]), "global_step": float(global_step),
                   NOTES_PER_SECOND_METRIC: session_notes * worker.world_size / max(seconds, 1e-9),
                   EPOCH_SECONDS_METRIC: seconds, "lr": float(optimizer.param_groups[0]["lr"])}
        if not complete:
            metrics["step"] = step
        metrics.update(evaluate(worker, model, spec, "valid", "valid"))
        at = now_position(epoch, 0, _Epoch()) if complete else now_position(
            epoch - 1, step, _Epoch(float(totals[0]), int(totals[1])))
        folder = None
        if worker.is_chief:
            folder = save_resume_point(worker, model, optimizer, at, metrics)
            worker.log_metrics({k: v for k, v in metrics.items() if k not in ("epoch", "status")}, step=epoch)
            worker.log_artifact(folder / MODEL_FILE, epoch_checkpoint_artifact(epoch))
            log.info("%s epoch %d/%d%s: %s", phase, epoch, epochs, "" if complete else f" (step {step}/{plan.steps})",
                     _format(metrics))
            append_journal(loop.get("journal_path"), {"epoch": epoch, "epochs": epochs, **metrics})
        last_checkpoint = time.monotonic()
        # Only epoch ends go to Ray Train: a worker restarted by it finds a later point in the resume folder.
        _report(worker, metrics, folder if complete else None)
        last = at
    reader.close()
    stopped_by = stopped_by or "epochs"

    # The end of the phase: Table 1's metrics on test and on the train split, and examples.
    examples: list | None = [] if worker.is_chief else None
    final = {k: v for k, v in metrics.items() if k != "status"}
    final.update(evaluate(worker, model, spec, "test", "test", examples))
    final.update(evaluate(worker, model, spec, "train_eval", "train"))
    last_epoch = last.epoch + (1 if last.step else 0)
    final.update({"status": "finished", "epoch": last.epoch, "step": last.step, "global_step": last.global_step,
                  "stopped_by": stopped_by, "resumed_from_epoch": done})
    if worker.is_chief:
        worker.log_metrics({k: v for k, v in final.items() if k.startswith(("test_", "train_"))
                            and k != "train_loss"}, step=last_epoch)
        worker.log_metrics({"phase_steps": last.global_step, "phase_minutes": last.seconds / 60}, step=last_epoch)
        if worker.mlflow is not None:
            worker.mlflow.set_tag(worker.run_id, STOPPED_BY_TAG, stopped_by)
        log_examples(worker, examples)
        silent = _warn_if_silent(worker, examples)
        log.info("%s finished (stopped by its %s budget at epoch %d step %d, %d steps): %s", phase,
                 stopped_by, last.epoch, last.step, last.global_step, _format(final))
        append_journal(loop.get("journal_path"), {"epochs": epochs, **final, "warnings": [silent] if silent else []})
    with tempfile.TemporaryDirectory() as tmp:
        folder = None
        if worker.is_chief:
            # The final report carries a checkpoint (the same weights as the last one saved,
            # or the initial ones when epochs = 0) because Ray Train's result holds the
            # metrics of the latest checkpoint: this way they are the final scores.
            folder = Path(tmp)
            _write_checkpoint(worker, folder, model, optimizer, last, final)
        _report(worker, final, folder)



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


