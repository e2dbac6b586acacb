"""The training pipeline's driver: three phases on Ray Train, tracked in MLflow, resumable.

:func:`run_pipeline` is the library entry point (the CLI, ``pipelines/train.py``, the
quick start and the Table 1 reproduction call it). What it does:

1. Checks everything it can before any worker starts (:mod:`.plan`): the config,
   the dataset (a finished dataset with a train split, notes of the model's length),
   the cluster's resources (on a local Ray), and, when resuming, that the run's
   model config and dataset have not changed.
2. Opens (or finds again) one MLflow parent run per pipeline run, logs the whole
   resolved config as its params, and one nested run per phase, named
   ``autoencoder`` / ``sequence`` / ``finetune`` (the run tree of :mod:`sing_ray.tracking`).
3. Runs each phase as a ``TorchTrainer`` (DDP; gloo on CPU) with
   ``RunConfig(name=<phase>, storage_path=<run dir>)`` and
   ``FailureConfig(max_failures)`` (:mod:`.phase`). Before the sequence phase, the
   trained encoder embeds the train split once (:mod:`sing_ray.train.embeddings`).
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

import logging
import shutil
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from .. import console, tracking
from ..config import PHASES, Config, ConfigError, flatten
from ..errors import UserError
from .phase import NonFiniteLossError, PhaseFailedError, embed_train_split, fit_phase, make_loop_config
from .plan import Plan, check_inputs, check_resources

log = logging.getLogger(__name__)

# The driver's API, with the names it takes from .plan and .phase (the CLI imports check_inputs from here).
__all__ = ["NonFiniteLossError", "PhaseFailedError", "PhaseResult", "PipelineResult", "Plan", "check_inputs",
           "check_resources", "make_loop_config", "run_pipeline"]


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
        stopped_by: what ended it: ``epochs``, or the budget it reached, ``steps`` or
            ``max_minutes`` (None for a phase found finished).
        steps: batches trained in the phase in all (0 for a phase found finished).
    """

    phase: str
    run_id: str
    checkpoint: Path
    epochs: int
    metrics: dict[str, float]
    skipped: bool = False
    resumed_from_epoch: int = 0
    stopped_by: str | None = None
    steps: int = 0


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
# MLflow runs (the run tree's names and lookups are :mod:`sing_ray.tracking`'s)
# ---------------------------------------------------------------------------


def _check_resumable(run, plan: Plan) -> None:
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


def _dataset_params(plan: Plan) -> dict[str, Any]:
    return {"dataset": plan.dataset, "dataset.num_instruments": len(plan.instruments),
            **{f"dataset.num_{s}": plan.count(s) for s in ("train", "valid", "test")}}


def _open_parent(client, plan: Plan, experiment_id: str, run_name: str, run_dir: Path,
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


def _phase_run(client, parent, phase: str, plan: Plan, reopen: bool = True):
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
        notes: dict = {}            # the splits read once, for every phase (see phase_datasets)
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
                    embed_train_split(plan, run_dir, init["autoencoder"])
                log.info("%s: training on %d worker(s)%s", phase, plan.cfg.run.num_workers,
                         " with GPUs" if plan.cfg.run.use_gpu else "")
                path, epochs, resumed_from, final = fit_phase(plan, phase, phase_run, tracking_uri, run_dir, init,
                                                              notes)
                metrics = _latest_metrics(client, phase_run.info.run_id)
                tracking.finish_phase(client, parent.info.run_id, phase, path, epochs, metrics)
                tracking.end_run(client, phase_run.info.run_id)
                result.phases[phase] = PhaseResult(phase, phase_run.info.run_id, path, epochs, metrics,
                                                   resumed_from_epoch=resumed_from,
                                                   stopped_by=final.get("stopped_by"),
                                                   steps=int(final.get("global_step", 0)))
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


def _adopt_autoencoder(client, parent_id: str, plan: Plan, source: Path, run_dir: Path) -> Path:
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
