"""The training pipeline's driver: three phases on Ray Train, tracked in MLflow, resumable.

:func:`run_pipeline` is the library entry point (the CLI, ``pipelines/train.py``, the
quick start and the Table 1 reproduction call it). What it does:

1. Checks everything it can before any worker starts: the config, the dataset
   (a finished dataset with a train split, notes of the model's length), the
   cluster's resources (on a local Ray), and, when resuming, that the run's
   model config and dataset have not changed.
2. Opens (or finds again) one MLflow parent run per pipeline run, logs the whole
   resolved config as its params, and one nested run per phase, named
   ``autoencoder`` / ``sequence`` / ``finetune``.
3. Runs each phase as a ``TorchTrainer`` (DDP; gloo on CPU) with
   ``RunConfig(name=<phase>, storage_path=<run dir>)`` and
   ``FailureConfig(max_failures)``. Before the sequence phase, the trained
   encoder embeds the train split once (:mod:`sing_ray.train.embeddings`).
4. Copies each phase's final model to ``<run dir>/models/<phase>.pt``, marks the
   phase finished (tags on the parent run), and after ``finetune`` logs the SING
   model and registers it as ``models:/sing/N``.

Re-running with the same ``run.run_name`` (or the parent run's id) skips finished
phases and resumes an interrupted one from its last checkpoint: Ray Train V2
restores a run whose ``(storage_path, name)`` already holds a checkpoint
manager snapshot, and ``ray.train.get_checkpoint()`` then returns its latest
checkpoint.

Run folder::

    <run.storage_path>/<run name>/
      autoencoder/  sequence/  finetune/   Ray Train storage: checkpoint_*/ (model.pt, optimizer.pt), snapshot
      embeddings/train/                    phase 2's input (Parquet), _SUCCESS when complete
      embeddings/interpolated/             train.sequence_interpolated: notes between trained pitches
      models/<phase>.pt                    each finished phase's model (self-describing checkpoint)
      faults/                              markers of injected faults (tests, drills)
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from ..config import PHASES, Config, ConfigError, flatten
from ..errors import UserError
from .. import console
from ..console import PhaseProgress
from .. import tracking
from .faults import faults_from_env

log = logging.getLogger(__name__)

CHECKPOINTS_TO_KEEP = 2         # Ray Train storage; every epoch's model is in MLflow anyway
MATERIALIZE_BYTES = 1 << 30     # splits smaller than this are decoded once per phase (see _datasets)
INTERPOLATED = "interpolated"   # run_dir/embeddings/<this>: train.sequence_interpolated's notes
NOTES_PER_EMBED_ACTOR = 256


class NonFiniteLossError(UserError):
    """A phase stopped on a NaN or infinite loss. Its last good checkpoint is kept. Exit status 1."""

    exit_code = 1


class PhaseFailedError(UserError):
    """A phase failed beyond ``run.max_failures`` worker restarts. Exit status 1."""

    exit_code = 1


@dataclass
class PhaseResult:
    """One phase of a pipeline run.

    Attributes:
        phase: ``autoencoder``, ``sequence`` or ``finetune``.
        run_id: the phase's nested MLflow run.
        checkpoint: the phase's final model (a self-describing checkpoint file).
        epochs: epochs trained in total.
        metrics: the latest value of every metric of the phase's MLflow run: ``train_loss``,
            ``valid_wav_mse``, ``valid_spectral_l1`` (last epoch), ``test_wav_mse``,
            ``test_spectral_l1``, ``train_wav_mse``, ``train_spectral_l1`` (Table 1's columns,
            scored at the end of the phase), ``notes_per_second``...
        skipped: True when the phase had finished in an earlier invocation.
        resumed_from_epoch: the epoch it resumed after in this invocation (0: from scratch).
    """

    phase: str
    run_id: str
    checkpoint: Path
    epochs: int
    metrics: dict[str, float]
    skipped: bool = False
    resumed_from_epoch: int = 0


@dataclass
class PipelineResult:
    """What :func:`run_pipeline` produced.

    Attributes:
        run_id, run_name: the MLflow parent run.
        experiment_id, tracking_uri: where it lives.
        run_dir: the run's folder (Ray Train storage, embeddings, final models).
        phases: the phases run (or found finished), in order.
        model_uri: ``models:/sing/N`` when the SING model was registered, else None.
    """

    run_id: str
    run_name: str
    experiment_id: str
    tracking_uri: str
    run_dir: Path
    phases: dict[str, PhaseResult] = field(default_factory=dict)
    model_uri: str | None = None

    @property
    def checkpoints(self) -> dict[str, Path]:
        """``{phase: final model checkpoint}``."""
        return {name: p.checkpoint for name, p in self.phases.items()}

    @property
    def checkpoint(self) -> Path:
        """The last phase's final model (the SING checkpoint after ``finetune``)."""
        return list(self.phases.values())[-1].checkpoint

    @property
    def ui_command(self) -> str:
        """How to open the MLflow UI on this run's store (a tracking server serves its own)."""
        if self.tracking_uri.startswith(("http://", "https://")):
            return f"open {self.tracking_uri}/#/experiments/{self.experiment_id}/runs/{self.run_id}"
        return f"mlflow ui --backend-store-uri {self.tracking_uri}"


# ---------------------------------------------------------------------------
# Checks before any worker starts
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    cfg: Config
    dataset: str
    manifest: dict
    phases: tuple[str, ...]
    faults: list[dict]

    @property
    def instruments(self) -> list[str]:
        return list(self.manifest["instruments"])

    def count(self, split: str) -> int:
        return int(self.manifest.get("splits", {}).get(split, {}).get("accepted", 0))


def check_inputs(cfg: Config, dataset: str, phases: Sequence[str] = PHASES) -> _Plan:
    """Everything that can be checked without Ray: config, phases, dataset, faults.

    Raises:
        ConfigError or UserError (exit status 2) with a message naming the problem.
    """
    from ..data.dataset import load_manifest
    from ..data.storage import resolve

    cfg = cfg.validate()
    phases = tuple(phases)
    if not phases or phases != PHASES[:len(phases)]:
        raise ConfigError(f"phases must be a prefix of {', '.join(PHASES)} (each needs the one before); "
                          f"got {', '.join(phases) or 'none'}")
    if "://" in cfg.run.storage_path:
        raise ConfigError(f"run.storage_path {cfg.run.storage_path!r}: training runs need a local or shared "
                          "file-system path (mounted on every node); object-store URIs are not supported")
    manifest = load_manifest(dataset)
    uri = resolve(dataset).uri
    train = int(manifest.get("splits", {}).get("train", {}).get("accepted", 0))
    if train == 0:
        raise UserError(f"{uri}: the dataset has no notes in its train split; nothing to train on")
    for split in ("valid", "test"):
        if not int(manifest.get("splits", {}).get(split, {}).get("accepted", 0)):
            log.warning("%s: the %s split is empty; its metrics will be missing", uri, split)
    length = int(manifest.get("audio", {}).get("num_frames", cfg.model.wav_length))
    if length != cfg.model.wav_length:
        raise ConfigError(f"model.wav_length ({cfg.model.wav_length}) does not fit the dataset's notes of "
                          f"{length} samples")
    if not manifest.get("instruments"):
        raise UserError(f"{uri}: the manifest lists no instruments")
    return _Plan(cfg, uri, manifest, phases, faults_from_env())


def check_resources(cfg: Config) -> None:
    """On a local Ray, fail now if the workers can never be placed (Ray Train would wait forever).

    On a cluster (``RAY_ADDRESS`` set) the autoscaler may add the nodes later, so nothing is checked.
    """
    import ray

    if os.environ.get("RAY_ADDRESS"):
        return
    total = ray.cluster_resources()
    cpus, gpus = total.get("CPU", 0), total.get("GPU", 0)
    needed = cfg.run.num_workers * cfg.run.cpus_per_worker
    if cpus < needed:
        raise ConfigError(f"run.num_workers = {cfg.run.num_workers} x run.cpus_per_worker = "
                          f"{cfg.run.cpus_per_worker} needs {needed} CPUs; this Ray has {cpus:g}")
    if cfg.run.use_gpu and gpus < cfg.run.num_workers:
        raise ConfigError(f"--gpu with {cfg.run.num_workers} worker(s) needs {cfg.run.num_workers} GPUs; "
                          f"this Ray has {gpus:g}")


# ---------------------------------------------------------------------------
# MLflow runs (the run tree's names and lookups are :mod:`sing_ray.tracking`'s)
# ---------------------------------------------------------------------------


def _check_resumable(run, plan: _Plan) -> None:
    """A resumed run must train the same model on the same dataset; other changes are recorded."""
    params = run.data.params
    tags = run.data.tags
    if tags.get(tracking.DATASET_TAG) not in (None, plan.dataset):
        raise ConfigError(f"run {run.info.run_name!r} trained on {tags[tracking.DATASET_TAG]}, not {plan.dataset}; "
                          "choose another --run-name for a new run")
    current = {k: str(v) for k, v in flatten(plan.cfg).items()}
    model_diff = [f"{k}: {params[k]} -> {current[k]}" for k in sorted(current)
                  if k.startswith("model.") and k in params and params[k] != current[k]]
    if model_diff:
        raise ConfigError(f"run {run.info.run_name!r} was started with another model ({'; '.join(model_diff)}); "
                          "its checkpoints cannot be resumed with this config. Choose another --run-name")
    train_diff = [f"{k}: {params[k]} -> {current[k]}" for k in sorted(current)
                  if k.startswith("train.") and k in params and params[k] != current[k]]
    if train_diff:
        log.warning("run %s resumes with changed training settings: %s", run.info.run_name, "; ".join(train_diff))


def _dataset_params(plan: _Plan) -> dict[str, Any]:
    return {"dataset": plan.dataset, "dataset.num_instruments": len(plan.instruments),
            **{f"dataset.num_{s}": plan.count(s) for s in ("train", "valid", "test")}}


def _open_parent(client, plan: _Plan, experiment_id: str, run_name: str, run_dir: Path,
                 parent_of: str | None):
    """Find the run to resume, or create it. Returns (run, run_dir, resumed)."""
    run = tracking.find_pipeline_run(client, experiment_id, run_name)
    if run is not None:
        _check_resumable(run, plan)
        run_dir = Path(run.data.tags.get(tracking.RUN_DIR_TAG, run_dir))
        tracking.mark_running(client, run.info.run_id)
        log.info("resuming pipeline run %s (%s) in %s", run.info.run_name, run.info.run_id, run_dir)
        return run, run_dir, True
    run = tracking.create_pipeline_run(client, experiment_id, run_name, dataset=plan.dataset, preset=plan.cfg.preset,
                                       run_dir=run_dir, params={**flatten(plan.cfg), **_dataset_params(plan)},
                                       manifest=plan.manifest, nest_under=parent_of)
    log.info("pipeline run %s (%s) in %s", run_name, run.info.run_id, run_dir)
    return run, run_dir, False


def _phase_run(client, parent, phase: str, plan: _Plan, reopen: bool = True):
    """The nested run of ``phase`` under ``parent``: found again (and marked running if
    ``reopen``), or created with the phase's params."""
    cfg = plan.cfg
    p = cfg.train.phase(phase)
    params = {"phase": phase, "epochs": p.epochs, "lr": p.lr, "lr_final": p.lr_final, "batch_size": p.batch_size,
              "loss": "mse (embeddings)" if phase == "sequence" else cfg.train.phase_loss(phase),
              "num_workers": cfg.run.num_workers, "use_gpu": cfg.run.use_gpu}
    if phase == "sequence":
        params["truncated_steps"] = cfg.train.truncated_steps
    return tracking.phase_run(client, parent, phase, params=params, dataset=plan.dataset, manifest=plan.manifest,
                              reopen=reopen)


def _latest_metrics(client, run_id: str) -> dict[str, float]:
    return dict(client.get_run(run_id).data.metrics)


# ---------------------------------------------------------------------------
# One phase on Ray Train
# ---------------------------------------------------------------------------


def make_loop_config(plan: _Plan, phase: str, run_id: str, tracking_uri: str, run_dir: Path,
                     init: dict[str, str | None], datasets: Sequence[str]) -> dict:
    """The plain dict every worker of ``phase`` receives (see :mod:`sing_ray.train.loops`)."""
    cfg = plan.cfg
    return {
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
            round(math.prod(_interpolated_share(plan, run_dir))) if phase == "sequence" else 0),
        "batch_size": cfg.train.phase(phase).batch_size // cfg.run.num_workers,
        "threads": cfg.run.cpus_per_worker,
        "log_every_s": 10.0,
    }


def _interpolated_share(plan: _Plan, run_dir: Path) -> tuple[float, int]:
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


def _datasets(plan: _Plan, phase: str, run_dir: Path, notes: dict | None = None) -> dict:
    """The Ray Datasets of a phase: ``train`` (split), ``train_eval`` (split), ``valid``, ``test`` (whole).

    A split whose float32 waveforms fit in ``MATERIALIZE_BYTES`` is read and decoded
    once, here on the driver, into Ray's object store (:func:`read_note_split`): every
    epoch iterates it again (and every worker iterates ``valid`` whole), and re-running
    the Parquet read and decode tasks each time costs more than the training step on
    small data. ``notes``, a dict kept by the caller, holds those splits from one phase
    to the next. Larger splits stream.
    """
    from ..data.dataset import make_note_dataset, read_note_split
    from .embeddings import make_embedding_dataset

    columns = ["note_str", "instrument", "pitch", "velocity", "wav"]
    bytes_per_note = plan.cfg.model.wav_length * 4
    notes = {} if notes is None else notes
    for split in ("train", "valid", "test"):
        if plan.count(split) and split not in notes:
            if plan.count(split) * bytes_per_note <= MATERIALIZE_BYTES:
                notes[split] = read_note_split(plan.dataset, split, columns)
            else:
                notes[split] = make_note_dataset(plan.dataset, split).select_columns(columns)
    if phase == "sequence":
        bytes_per_embedding = plan.cfg.num_frames * plan.cfg.model.dimension * 4
        train = make_embedding_dataset(run_dir / "embeddings" / "train")
        if plan.count("train") * bytes_per_embedding <= MATERIALIZE_BYTES:
            train = train.materialize()
        fraction, count = _interpolated_share(plan, run_dir)
        if fraction:
            # A fresh draw every epoch: Ray Train runs the dataset's plan again for each.
            extra = make_embedding_dataset(run_dir / "embeddings" / INTERPOLATED)
            if count * bytes_per_embedding <= MATERIALIZE_BYTES:
                extra = extra.materialize()
            train = train.union(extra.random_sample(fraction))
    else:
        train = notes["train"]
    datasets = {"train": train.randomize_block_order(), "train_eval": notes["train"]}
    datasets.update({s: notes[s] for s in ("valid", "test") if s in notes})
    return datasets


def _fit_phase(plan: _Plan, phase: str, phase_run, tracking_uri: str, run_dir: Path,
               init: dict[str, str | None], notes: dict | None = None):
    """Run one phase's TorchTrainer to the end. Returns (final model path, epochs, resumed_from_epoch)."""
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
        datasets = _datasets(plan, phase, run_dir, notes)
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
            dataset_config=ray.train.DataConfig(datasets_to_split=["train", "train_eval"]),
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
    with result.checkpoint.as_directory() as folder:
        path = copy_model_file(folder, run_dir / "models" / f"{phase}.pt")
    # The phase is done: its resume point (a model and optimizer state) is no longer needed.
    shutil.rmtree(resume_folder(run_dir, phase), ignore_errors=True)
    log.info("%s: finished in %.0f s; model %s", phase, time.monotonic() - started, path)
    return path, int(metrics.get("epoch", 0)), int(metrics.get("resumed_from_epoch", 0))


# ---------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------


def run_pipeline(cfg: Config, dataset: str, *, phases: Sequence[str] = PHASES,
                 register: bool = True, autoencoder_from: str | Path | None = None) -> PipelineResult:
    """Train SING's phases on Ray Train, tracked in MLflow; resume the run if it exists.

    Args:
        cfg: the resolved config (``load_config``). ``cfg.run`` says where: ``run_name``
            (None: a new name; an existing name or parent run id resumes that run),
            ``tracking_uri`` (None: ``$MLFLOW_TRACKING_URI``, else ``./mlflow.db``; or the
            caller's active MLflow run, under which the pipeline's run is nested),
            ``experiment``, ``storage_path``, ``num_workers``, ``use_gpu``, ``max_failures``.
        dataset: an ingested dataset folder or URI (``sing-ray data ingest``).
        phases: a prefix of ``("autoencoder", "sequence", "finetune")``; ``("autoencoder",)``
            trains the autoencoder alone (Table 1's autoencoder rows).
        register: log and register the SING model after ``finetune`` (``models:/sing/N``).
        autoencoder_from: the folder of a run on the same dataset whose autoencoder phase has
            finished: this run takes that autoencoder (and its embeddings of the train split,
            when complete) as its own phase 1 instead of training one. Table 1's ablation,
            which changes only the sequence model, starts from the spectral run's autoencoder.
            The autoencoder's sizes (``model.channels`` ...) must be this config's.
    Returns:
        the :class:`PipelineResult`.
    Raises:
        ConfigError / UserError (exit 2) before any worker starts for a config or input
        that cannot run; NonFiniteLossError, PhaseFailedError (exit 1) when a phase fails.
    """
    import mlflow

    from ..runtime import init_ray

    plan = check_inputs(cfg, dataset, phases)
    init_ray()
    check_resources(plan.cfg)
    tracking_uri, nest_under, experiment = tracking.pipeline_tracking(plan.cfg.run.tracking_uri,
                                                                      plan.cfg.run.experiment)
    client = mlflow.MlflowClient(tracking_uri)
    experiment_id = tracking.training_experiment(client, experiment)
    run_name = plan.cfg.run.run_name or f"{plan.cfg.preset}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    storage = Path(plan.cfg.run.storage_path).expanduser().resolve()
    parent, run_dir, resumed = _open_parent(client, plan, experiment_id, run_name, storage / run_name, nest_under)
    run_name = parent.info.run_name
    console.log_to(run_dir / "logs" / "driver.log")
    log.info("Ray's and MLflow's own log lines: %s", run_dir / "logs" / "driver.log")
    plan = replace(plan, cfg=replace(plan.cfg, run=replace(plan.cfg.run, run_name=run_name)))
    result = PipelineResult(run_id=parent.info.run_id, run_name=run_name, experiment_id=experiment_id,
                            tracking_uri=tracking_uri, run_dir=run_dir)
    phase_run = None
    try:
        init: dict[str, str | None] = {"autoencoder": None, "sequence": None}
        notes: dict = {}            # the splits read once, for every phase (see _datasets)
        for phase in plan.phases:
            tags = client.get_run(parent.info.run_id).data.tags
            final = run_dir / "models" / f"{phase}.pt"
            finished = tracking.is_phase_finished(tags, phase) and final.exists()
            adopted = phase == "autoencoder" and autoencoder_from is not None and not finished
            if adopted:
                _adopt_autoencoder(client, parent.info.run_id, plan, Path(autoencoder_from), run_dir)
                tags, finished = client.get_run(parent.info.run_id).data.tags, True
            phase_run = _phase_run(client, parent, phase, plan, reopen=not finished)
            if adopted:
                client.set_tag(phase_run.info.run_id, tracking.AUTOENCODER_FROM_TAG, str(autoencoder_from))
                tracking.end_run(client, phase_run.info.run_id)
            if finished:
                if not adopted:
                    log.info("%s: finished in an earlier invocation; skipping (%s)", phase, final)
                metrics = _latest_metrics(client, phase_run.info.run_id)
                result.phases[phase] = PhaseResult(phase, phase_run.info.run_id, final,
                                                   int(tags.get(tracking.epochs_tag(phase), 0)), metrics,
                                                   skipped=True)
                phase_run = None
            else:
                if phase == "sequence":
                    _embed(plan, run_dir, init["autoencoder"])
                log.info("%s: training on %d worker(s)%s", phase, plan.cfg.run.num_workers,
                         " with GPUs" if plan.cfg.run.use_gpu else "")
                path, epochs, resumed_from = _fit_phase(plan, phase, phase_run, tracking_uri, run_dir, init, notes)
                metrics = _latest_metrics(client, phase_run.info.run_id)
                tracking.finish_phase(client, parent.info.run_id, phase, path, epochs, metrics)
                tracking.end_run(client, phase_run.info.run_id)
                result.phases[phase] = PhaseResult(phase, phase_run.info.run_id, path, epochs, metrics,
                                                   resumed_from_epoch=resumed_from)
            phase_run = None
            init[phase] = str(result.phases[phase].checkpoint)
        if register and "finetune" in result.phases:
            tags = client.get_run(parent.info.run_id).data.tags
            result.model_uri = tags.get(tracking.REGISTERED_MODEL_TAG)
            if not result.model_uri:
                result.model_uri = tracking.register_model(client, tracking_uri, parent.info.run_id, result.checkpoint)
                log.info("registered %s", result.model_uri)
    except BaseException:
        if phase_run is not None:
            tracking.end_run(client, phase_run.info.run_id, failed=True)
        tracking.end_run(client, parent.info.run_id, failed=True)
        raise
    tracking.end_run(client, parent.info.run_id)
    return result


def _adopt_autoencoder(client, parent_id: str, plan: _Plan, source: Path, run_dir: Path) -> Path:
    """Take a finished run's autoencoder (and its train embeddings) as this run's phase 1.

    Raises:
        UserError: no finished autoencoder in ``source``, or one of other sizes than ``plan.cfg``'s.
    """
    from ..checkpoint import load_checkpoint
    from ..models.sing import autoencoder_kwargs
    from .embeddings import SUCCESS

    model = source / "models" / "autoencoder.pt"
    if not model.is_file():
        raise UserError(f"autoencoder_from {source}: no finished autoencoder there ({model} does not exist)")
    ckpt = load_checkpoint(model)
    want, have = autoencoder_kwargs(plan.cfg.model), ckpt.get("kwargs", {})
    if ckpt.get("class") != "Autoencoder" or have != want:
        differ = ", ".join(f"{k}: {have.get(k)!r} there, {want.get(k)!r} here"
                           for k in sorted(set(want) | set(have)) if have.get(k) != want.get(k))
        raise UserError(f"autoencoder_from {model}: not an autoencoder of this config's sizes ({differ or ckpt.get('class')})")
    final = run_dir / "models" / "autoencoder.pt"
    final.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, final)
    embeddings, mine = source / "embeddings" / "train", run_dir / "embeddings" / "train"
    if (embeddings / SUCCESS).exists() and not (mine / SUCCESS).exists():
        shutil.rmtree(mine, ignore_errors=True)
        shutil.copytree(embeddings, mine)
    epochs = int(ckpt.get("epoch") or 0)
    tracking.finish_phase(client, parent_id, "autoencoder", final, epochs,
                          extra_tags={tracking.AUTOENCODER_FROM_TAG: str(source)})
    log.info("autoencoder: taken from %s (%d epochs)%s", source, epochs,
             "" if not (mine / SUCCESS).exists() else ", with its embeddings")
    return final


def _embed(plan: _Plan, run_dir: Path, autoencoder: str | None) -> Path:
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
        folder, count = precompute_interpolated(out, run_dir / "embeddings" / INTERPOLATED)
        fraction, _ = _interpolated_share(plan, run_dir)
        log.info("embeddings: %d interpolated notes between the trained pitches of %d train notes; each "
                 "sequence epoch draws %.0f%% of them (train.sequence_interpolated = %g)", count,
                 plan.count("train"), 100 * fraction, cfg.train.sequence_interpolated)
    return out
