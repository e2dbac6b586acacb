"""One phase of a pipeline run on Ray Train: its datasets, its workers' config, its TorchTrainer.

:func:`fit_phase` runs a phase's ``TorchTrainer`` (DDP; gloo on CPU) with
``RunConfig(name=<phase>, storage_path=<run dir>)`` and ``FailureConfig(max_failures)``
to the end and copies its final model to ``<run dir>/models/<phase>.pt``. Before the
sequence phase, :func:`embed_train_split` embeds the train split once with phase 1's
encoder (:mod:`sing_ray.train.embeddings`).
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from .. import console
from ..console import PhaseProgress
from ..errors import UserError
from .plan import Plan

# The driver's log lines keep the logger they had when this was part of pipeline.py.
log = logging.getLogger("sing_ray.train.pipeline")

CHECKPOINTS_TO_KEEP = 2         # Ray Train storage; every epoch's model is in MLflow anyway
MATERIALIZE_BYTES = 1 << 30     # train.materialize_mb's default (1,024 MiB), in bytes
RECORD_VAR = "SING_RAY_RECORD_BATCHES"  # a file each worker appends its batches' notes to (tests, drills)
INTERPOLATED = "interpolated"   # run_dir/embeddings/<this>: train.sequence_interpolated's notes
NOTES_PER_EMBED_ACTOR = 256


class NonFiniteLossError(UserError):
    """A phase stopped on a NaN or infinite loss. Its last good checkpoint is kept. Exit status 1."""

    exit_code = 1


class PhaseFailedError(UserError):
    """A phase failed beyond ``run.max_failures`` worker restarts. Exit status 1."""

    exit_code = 1


def make_loop_config(plan: Plan, phase: str, run_id: str, tracking_uri: str, run_dir: Path,
                     init: dict[str, str | None], datasets: Sequence[str]) -> dict:
    """The plain dict every worker of ``phase`` receives (see :mod:`sing_ray.train.loops`).

    ``train_sources`` are the Parquet files the workers read the train split from, in an order
    of (seed, epoch) (:mod:`sing_ray.train.order`); ``datasets`` the Ray Datasets they score.
    """
    cfg = plan.cfg
    return {
        "train_sources": train_sources(plan, phase, run_dir),
        "record_batches": os.environ.get(RECORD_VAR) or None,
        "datasets": list(datasets),
        "config": asdict(cfg),
        "phase": phase,
        "run_id": run_id,
        "tracking_uri": tracking_uri,
        "dataset": plan.dataset,
        "instruments": plan.instruments,
        "init": init,
        "run_dir": str(run_dir),
        "snapshot_path": str(run_dir / phase / "checkpoint_manager_snapshot.json"),
        "status_path": str(_status_path(run_dir, phase)),
        "progress_path": str(run_dir / "progress" / f"{phase}.json"),
        "journal_path": str(run_dir / "progress" / f"{phase}.jsonl"),
        "faults": plan.faults,
        "num_train_notes": plan.count("train") + (
            round(math.prod(interpolated_share(plan, run_dir))) if phase == "sequence" else 0),
        "batch_size": cfg.train.phase(phase).batch_size // cfg.run.num_workers,
        "threads": cfg.run.cpus_per_worker,
        "log_every_s": 10.0,
    }


def interpolated_share(plan: Plan, run_dir: Path) -> tuple[float, int]:
    """(share of the interpolated notes each sequence epoch draws, how many there are)."""
    from .embeddings import SUCCESS, count_rows

    folder = run_dir / "embeddings" / INTERPOLATED
    if not plan.cfg.train.sequence_interpolated or not (folder / SUCCESS).exists():
        return 0.0, 0
    count = count_rows(folder)
    if not count:
        return 0.0, 0
    return min(1.0, plan.cfg.train.sequence_interpolated * plan.count("train") / count), count


def _status_path(run_dir: Path, phase: str) -> Path:
    return run_dir / "status" / f"{phase}.json"


def _limit(plan: Plan) -> float:
    """The size in bytes under which a split is held in memory (``train.materialize_mb``)."""
    return plan.cfg.train.materialize_mb * (1 << 20)


def train_sources(plan: Plan, phase: str, run_dir: Path) -> list[dict]:
    """The train split's Parquet files as the workers read them (:func:`sing_ray.train.order.describe_source`).

    The autoencoder and finetune phases read the dataset's train shards and decode their
    audio; the sequence phase reads the train embeddings and, with
    ``train.sequence_interpolated``, a fresh share of the interpolated notes each epoch. A
    source whose float32 rows fit in ``train.materialize_mb`` is kept in each worker's memory
    once read; a larger one streams, a window of row groups at a time.
    """
    from ..data.dataset import load_manifest
    from ..data.storage import resolve
    from .embeddings import SUCCESS
    from .order import describe_source

    if phase == "sequence":
        bytes_per_embedding = plan.cfg.num_frames * plan.cfg.model.dimension * 4
        folder = run_dir / "embeddings" / "train"
        if not (folder / SUCCESS).exists():
            raise RuntimeError(f"the sequence phase needs the train embeddings ({folder} is not complete)")
        sources = [describe_source(sorted(str(f) for f in folder.glob("*.parquet")), audio=False,
                                   cache=plan.count("train") * bytes_per_embedding <= _limit(plan))]
        fraction, count = interpolated_share(plan, run_dir)
        if fraction:
            extra = run_dir / "embeddings" / INTERPOLATED
            sources.append(describe_source(sorted(str(f) for f in extra.glob("*.parquet")), audio=False,
                                           fraction=fraction, cache=count * bytes_per_embedding <= _limit(plan)))
        return sources
    where = resolve(plan.dataset)
    files = [where.join(s["path"]) for s in load_manifest(plan.dataset)["shards"] if s["split"] == "train"]
    return [describe_source(files, dataset=plan.dataset,
                            cache=plan.count("train") * plan.cfg.model.wav_length * 4 <= _limit(plan))]


def eval_subset(plan: Plan, split: str) -> list[str] | None:
    """The notes of ``split`` that are scored, when ``train.eval_notes`` is under its size; else None.

    An even subset: every k-th note in note_str order (k = count / eval_notes, fractional), so
    each instrument keeps about its share, and the same notes every epoch, phase and run.
    """
    limit, count = plan.cfg.train.eval_notes, plan.count(split)
    if not limit or count <= limit:
        return None
    from ..data.dataset import read_split_metadata

    names = sorted(read_split_metadata(plan.dataset, split, columns=("note_str",))["note_str"].tolist())
    picked = [names[int(i * len(names) / limit)] for i in range(limit)]
    log.info("%s split: scoring %d of its %d notes (train.eval_notes)", split, len(picked), len(names))
    return picked


def phase_datasets(plan: Plan, phase: str, run_dir: Path, notes: dict | None = None) -> dict:
    """The Ray Datasets a phase scores: ``train_eval`` (split across the workers), ``valid``, ``test`` (whole).

    (The train split itself the workers read from its Parquet files: :func:`train_sources`.)
    A split whose float32 waveforms fit in ``train.materialize_mb`` is read and decoded once,
    here on the driver, into Ray's object store (:func:`read_note_split`): every worker
    iterates ``valid`` whole each epoch, and re-running the Parquet read and decode tasks each
    time costs more than the scoring on small data. ``notes``, a dict kept by the caller, holds
    those splits from one phase to the next. Larger splits stream from Parquet
    (:func:`make_note_dataset`), block by block, each time they are scored.
    """
    from ..data.dataset import make_note_dataset, read_note_split

    columns = ["note_str", "instrument", "pitch", "velocity", "wav"]
    bytes_per_note = plan.cfg.model.wav_length * 4
    notes = {} if notes is None else notes
    for split in ("train", "valid", "test"):
        if plan.count(split) and split not in notes:
            subset = eval_subset(plan, split)
            if subset is not None:
                data = make_note_dataset(plan.dataset, split, note_strs=subset).select_columns(columns)
                notes[split] = data.materialize() if len(subset) * bytes_per_note <= _limit(plan) else data
            elif plan.count(split) * bytes_per_note <= _limit(plan):
                notes[split] = read_note_split(plan.dataset, split, columns)
            else:
                notes[split] = make_note_dataset(plan.dataset, split).select_columns(columns)
    datasets = {"train_eval": notes["train"]}
    datasets.update({s: notes[s] for s in ("valid", "test") if s in notes})
    return datasets


def fit_phase(plan: Plan, phase: str, phase_run, tracking_uri: str, run_dir: Path,
               init: dict[str, str | None], notes: dict | None = None):
    """Run one phase's TorchTrainer to the end.

    Returns:
        (final model path, epochs finished, resumed_from_epoch, the final report's metrics:
        ``stopped_by`` ("epochs", "steps" or "max_minutes"), ``step``, ``global_step``...).
    """
    import ray.data
    import ray.train
    from ray.train.torch import TorchTrainer

    from .loops import TRAIN_LOOPS, copy_model_file, resume_folder

    cfg = plan.cfg
    status_path = _status_path(run_dir, phase)
    status_path.unlink(missing_ok=True)
    ctx = ray.data.DataContext.get_current()
    saved = ctx.enable_progress_bars
    # The loops log epoch, step, loss and notes/s themselves; Ray Data's bars per
    # epoch and split would bury those lines.
    ctx.enable_progress_bars = False
    try:
        datasets = phase_datasets(plan, phase, run_dir, notes)
        trainer = TorchTrainer(
            TRAIN_LOOPS[phase],
            train_loop_config=make_loop_config(plan, phase, phase_run.info.run_id, tracking_uri, run_dir, init,
                                               list(datasets)),
            scaling_config=ray.train.ScalingConfig(num_workers=cfg.run.num_workers, use_gpu=cfg.run.use_gpu,
                                                   resources_per_worker={"CPU": cfg.run.cpus_per_worker}),
            run_config=ray.train.RunConfig(
                name=phase, storage_path=str(run_dir),
                failure_config=ray.train.FailureConfig(max_failures=cfg.run.max_failures),
                checkpoint_config=ray.train.CheckpointConfig(num_to_keep=CHECKPOINTS_TO_KEEP)),
            datasets=datasets,
            dataset_config=ray.train.DataConfig(datasets_to_split=["train_eval"]),
        )
        started = time.monotonic()
        try:
            with PhaseProgress(phase, run_dir / "progress" / f"{phase}.json", run_dir / "progress" / f"{phase}.jsonl",
                               show_bar=console.progress_bars(), logger=log):
                result = trainer.fit()
        except ray.train.TrainingFailedError as err:
            raise PhaseFailedError(
                f"phase {phase} failed (after up to run.max_failures = {cfg.run.max_failures} worker restarts): "
                f"{str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}. "
                f"Re-run the same command with --run-name {run_dir.name} to resume from its last checkpoint; "
                f"worker logs are under /tmp/ray/session_latest/logs") from err
    finally:
        ctx.enable_progress_bars = saved
    metrics = result.metrics or {}
    if status_path.exists():
        status = json.loads(status_path.read_text())
        last = "none (it diverged in its first epoch)"
        if result.checkpoint is not None:
            last = f"{result.checkpoint.path} (epoch {metrics.get('epoch', '?')})"
        raise NonFiniteLossError(
            f"phase {phase}: the training loss became non-finite at epoch {status.get('diverged_epoch')} "
            f"step {status.get('diverged_step')}; training stopped. The last good checkpoint is {last}. "
            f"Lower train.{phase}.lr (--set train.{phase}.lr=...) and re-run with --run-name {run_dir.name} "
            "to resume from it")
    if metrics.get("status") != "finished" or result.checkpoint is None:
        raise RuntimeError(f"phase {phase}: Ray Train ended without the loop's final report ({metrics})")
    if metrics.get("stopped_by") not in (None, "epochs"):
        log.info("%s: stopped by its %s budget at epoch %s step %s (%s steps in all)", phase,
                 metrics["stopped_by"], metrics.get("epoch"), metrics.get("step"), metrics.get("global_step"))
    with result.checkpoint.as_directory() as folder:
        path = copy_model_file(folder, run_dir / "models" / f"{phase}.pt")
    # The phase is done: its resume point (a model and optimizer state) is no longer needed.
    shutil.rmtree(resume_folder(run_dir, phase), ignore_errors=True)
    log.info("%s: finished in %.0f s; model %s", phase, time.monotonic() - started, path)
    return path, int(metrics.get("epoch", 0)), int(metrics.get("resumed_from_epoch", 0)), metrics


def embed_train_split(plan: Plan, run_dir: Path, autoencoder: str | None) -> Path:
    """Phase 2's input: embed the train split with phase 1's encoder (reused when complete)."""
    from ..data.dataset import make_note_dataset
    from .embeddings import precompute_embeddings, precompute_interpolated

    if autoencoder is None:
        raise RuntimeError("the sequence phase needs the autoencoder phase's model")
    cfg = plan.cfg
    # One encoder per NOTES_PER_EMBED_ACTOR notes, at most one per training worker: on
    # a small split, starting more actors costs more than the encoding they share.
    actors = max(1, min(cfg.run.num_workers, math.ceil(plan.count("train") / NOTES_PER_EMBED_ACTOR)))
    out = precompute_embeddings(
        make_note_dataset(plan.dataset, "train"), autoencoder, run_dir / "embeddings" / "train",
        num_actors=actors, batch_size=max(1, cfg.train.sequence.batch_size // cfg.run.num_workers),
        use_gpu=cfg.run.use_gpu, threads=cfg.run.cpus_per_worker)
    if cfg.train.sequence_interpolated:
        folder, count = precompute_interpolated(out, run_dir / "embeddings" / INTERPOLATED,
                                                cfg.train.sequence_interpolation, cfg.train.sequence_edges)
        fraction, _ = interpolated_share(plan, run_dir)
        log.info("embeddings: %d interpolated notes between the trained pitches of %d train notes; each "
                 "sequence epoch draws %.0f%% of them (train.sequence_interpolated = %g, %s%s)", count,
                 plan.count("train"), 100 * fraction, cfg.train.sequence_interpolated,
                 cfg.train.sequence_interpolation, ", and beyond the edges" if cfg.train.sequence_edges else "")
    return out
