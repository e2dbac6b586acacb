"""MLflow helpers: where runs go, the tree of runs the project writes, the final model and model URIs.

Embedded default: a SQLite store ``mlflow.db`` in the working folder (MLflow's
own default). ``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` points elsewhere,
e.g. the tracking server on a cluster's head node.

The run tree (this module owns its names; the training pipeline, the evaluation, the
Table 1 reproduction, the figures and ``bench quality`` write and find runs through it):

- a **pipeline run** (:func:`create_pipeline_run`): tag :data:`STAGE_TAG` = :data:`TRAIN_STAGE`,
  its dataset, preset and folder (:data:`RUN_DIR_TAG`); params: the whole resolved config and
  the dataset's counts. When it finishes a phase it records ``sing_ray.phase.<phase>`` =
  ``finished``, the phase's model and epochs (:func:`finish_phase`) and its end-of-phase
  scores as ``<phase>.<metric>``; after ``finetune``, the registered model
  (:data:`REGISTERED_MODEL_TAG`, :func:`register_model`). A caller's active run becomes its
  parent (Table 1's run, :data:`TABLE1_STAGE`, holds its training runs so).
- under it, one **phase run** per phase (:func:`phase_run`), named after the phase and tagged
  :data:`PHASE_TAG`: the workers log each epoch's metrics there and its model as the artifact
  :func:`epoch_checkpoint_artifact`.
- an **evaluation run** (:func:`create_evaluation_run`): :data:`STAGE_TAG` =
  :data:`EVALUATE_STAGE`, the model it scored (:data:`MODEL_TAG`), nested under the caller's
  active run when asked. :func:`find_training_run` leads from a model back to its pipeline run.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from .errors import UserError

log = logging.getLogger(__name__)

REGISTERED_MODEL = "sing"
CHECKPOINT_ARTIFACT = "checkpoint"
# MLflow 3's UI opens an experiment in the view its kind names: without the tag it
# lands on the GenAI overview (traces, judges, prompts) instead of the training runs.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

# The run tree's tags. MLflow's own: the parent of a nested run, a run's name.
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
# What a run is: a pipeline run (and its phase runs), an evaluation, a Table 1 reproduction.
STAGE_TAG = "sing_ray.stage"
TRAIN_STAGE = "train"
EVALUATE_STAGE = "evaluate"
TABLE1_STAGE = "table1"
PHASE_TAG = "sing_ray.phase"                     # a phase run's phase
DATASET_TAG = "sing_ray.dataset"                 # the dataset a pipeline run trains on
PRESET_TAG = "sing_ray.preset"
RUN_DIR_TAG = "sing_ray.run_dir"                 # a pipeline run's folder (Ray Train storage, models/)
MODEL_TAG = "sing_ray.model"                     # the model an evaluation scored
REGISTERED_MODEL_TAG = "sing_ray.registered_model"   # models:/sing/N, once registered
AUTOENCODER_FROM_TAG = "sing_ray.autoencoder_from"   # the run folder a pipeline run took phase 1 from
FINISHED = "finished"
# Set on a phase run by its workers (sing_ray.train.loops): the model's output fell silent; the loss diverged.
SILENT_OUTPUT_TAG = "sing_ray.silent_output"
DIVERGED_TAG = "sing_ray.diverged"
# The phase runs' per-epoch metrics that ``bench quality`` reads back.
EPOCH_SECONDS_METRIC = "epoch_seconds"
NOTES_PER_SECOND_METRIC = "notes_per_second"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """``uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def configure_mlflow(uri: str | None = None, experiment: str | None = None) -> str:
    """Point MLflow at the resolved store (and experiment). Returns the tracking URI."""
    import mlflow

    uri = resolve_tracking_uri(uri)
    mlflow.set_tracking_uri(uri)
    if experiment:
        found = mlflow.set_experiment(experiment)
        mark_training_experiment(mlflow.MlflowClient(uri), found.experiment_id)
    return uri


def mark_training_experiment(client, experiment_id: str) -> None:
    """Tag the experiment as model training, so the MLflow UI opens it on its runs."""
    experiment = client.get_experiment(experiment_id)
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)


def manifest_digest(manifest: dict) -> str:
    """A short content digest of an ingested dataset's manifest (its notes, shards and split)."""
    import hashlib
    import json

    body = {k: v for k, v in manifest.items() if k != "source"}      # the same data read from elsewhere
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


def log_dataset_input(client, run_id: str, dataset_uri: str, manifest: dict, context: str) -> None:
    """Record the ingested dataset a run read as its MLflow dataset input (the UI's lineage).

    Args:
        dataset_uri: the dataset folder or URI, as the run read it.
        manifest: its ``manifest.json``; the input's digest is :func:`manifest_digest`.
        context: ``training`` or ``evaluation`` (and the split), shown beside the input.
    """
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    name = str(dataset_uri).rstrip("/").rsplit("/", 1)[-1] or str(dataset_uri)
    dataset = MetaDataset(resolve_dataset_source(str(dataset_uri)), name=name, digest=manifest_digest(manifest))
    client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(),
                                                     tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])])


def log_sing_model(checkpoint_path: str | Path, registered_name: str | None = REGISTERED_MODEL,
                   name: str = "sing"):
    """Log a SING checkpoint as an MLflow pyfunc model (no pickles) into the active run.

    Registers it under ``registered_name`` (the Model Registry) unless None.
    Returns MLflow's ModelInfo.
    """
    import mlflow

    import pandas as pd

    from .checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint_path)
    instruments = list(ckpt.get("extra", {}).get("instruments") or [])
    if not instruments:
        raise UserError(f"{checkpoint_path}: checkpoint has no instrument vocabulary (extra.instruments)")
    example = pd.DataFrame({"instrument": [instruments[0]], "pitch": [60], "velocity": [100]})
    code = Path(__file__).with_name("mlflow_model.py")
    from . import console

    # MLflow prints "Successfully registered model ..." itself; the pipeline says it in one line.
    with console.prints_to_log():
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(code),
            artifacts={CHECKPOINT_ARTIFACT: str(checkpoint_path)},
            registered_model_name=registered_name,
            pip_requirements=["sing-ray", "torch", "mlflow"],
            signature=sing_signature(int(((ckpt.get("config") or {}).get("model") or {}).get("wav_length", 64000))),
            input_example=example,
        )


def sing_signature(wav_length: int = 64000):
    """The pyfunc's signature: rows of (instrument, pitch, velocity[, mix]) to ``wav_length`` floats each.

    ``mix`` is an optional per-row timbre mix, ``"NAME:WEIGHT,NAME:WEIGHT"`` (up to the
    vocabulary), used instead of ``instrument`` where given.
    """
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    inputs = Schema([ColSpec("string", "instrument"), ColSpec("long", "pitch"), ColSpec("long", "velocity"),
                     ColSpec("string", "mix", required=False)])
    outputs = Schema([TensorSpec(np.dtype("float32"), (-1, wav_length))])
    return ModelSignature(inputs=inputs, outputs=outputs)


def resolve_model(model: str | Path, tracking_uri: str | None = None) -> Path:
    """A local checkpoint path for MODEL: a path, or an MLflow URI (``models:/sing/3``, ``runs:/<id>/sing``).

    Raises UserError when it cannot be found or fetched.
    """
    text = str(model)
    if "://" not in text and ":/" not in text:
        path = Path(text)
        if not path.exists():
            raise UserError(f"{text}: no such checkpoint file (or give an MLflow URI like models:/sing/1)")
        return path
    import mlflow

    configure_mlflow(tracking_uri)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=text))
    except Exception as err:
        raise UserError(f"{text}: cannot fetch the model from MLflow ({type(err).__name__}: {err})") from None
    if local.is_file():
        return local
    found = sorted(local.rglob("*.pt"))
    if not found:
        raise UserError(f"{text}: the MLflow model holds no checkpoint (*.pt)")
    return found[0]


# ---------------------------------------------------------------------------
# The run tree
# ---------------------------------------------------------------------------


def phase_tag(phase: str) -> str:
    """The pipeline run's tag that says ``phase`` is finished (value :data:`FINISHED`)."""
    return f"sing_ray.phase.{phase}"


def checkpoint_tag(phase: str) -> str:
    """The pipeline run's tag that holds a finished phase's model file."""
    return f"sing_ray.checkpoint.{phase}"


def epochs_tag(phase: str) -> str:
    """The pipeline run's tag that holds the epochs a finished phase trained."""
    return f"sing_ray.epochs.{phase}"


def epoch_checkpoint_artifact(epoch: int) -> str:
    """The artifact folder of a phase run that holds epoch ``epoch``'s model (``model.pt``)."""
    return f"checkpoints/epoch-{epoch:03d}"


def is_phase_finished(tags: dict[str, str], phase: str) -> bool:
    """True when a pipeline run's tags record ``phase`` as finished."""
    return tags.get(phase_tag(phase)) == FINISHED


def pipeline_tracking(uri: str | None, experiment: str) -> tuple[str, str | None, str]:
    """Where a pipeline run goes: (tracking URI, run to nest under, experiment name).

    With no ``uri`` and an active MLflow run in this process (Table 1's, a user's), the
    pipeline run is nested under it, in its store and experiment. Otherwise ``uri`` (resolved
    by :func:`resolve_tracking_uri`) and ``experiment``, at the top level.
    """
    import mlflow

    active = mlflow.active_run()
    if active is not None and uri is None:
        name = mlflow.MlflowClient().get_experiment(active.info.experiment_id).name
        return mlflow.get_tracking_uri(), active.info.run_id, name
    return resolve_tracking_uri(uri), None, experiment


def training_experiment(client, name: str) -> str:
    """The id of the experiment ``name`` (restored if deleted, created if missing), marked as training."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        experiment_id = experiment.experiment_id
    else:
        experiment_id = client.create_experiment(name)
    mark_training_experiment(client, experiment_id)
    return experiment_id


_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def find_pipeline_run(client, experiment_id: str, name: str):
    """The pipeline run called ``name`` (the latest of that name), or with id ``name``; None if none."""
    if _RUN_ID.match(name):
        try:
            run = client.get_run(name)
            if run.data.tags.get(STAGE_TAG) == TRAIN_STAGE:
                return run
        except Exception:  # MLflow raises store-specific types for an unknown id
            pass
    runs = client.search_runs([experiment_id], filter_string=(
        f"tags.mlflow.runName = '{name}' and tags.`{STAGE_TAG}` = '{TRAIN_STAGE}'"),
        order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def create_pipeline_run(client, experiment_id: str, name: str, *, dataset: str, preset: str, run_dir: Path,
                        params: dict[str, Any], manifest: dict, nest_under: str | None = None):
    """Create a pipeline run: its tags, its dataset input and ``params`` (the resolved config and more).

    Args:
        dataset: the dataset's URI; ``manifest`` its manifest (:func:`log_dataset_input`).
        run_dir: the run's folder, recorded as :data:`RUN_DIR_TAG`.
        nest_under: the run to nest it under (:func:`pipeline_tracking`), or None.
    Returns:
        the MLflow run.
    """
    from mlflow.entities import Param

    tags = {STAGE_TAG: TRAIN_STAGE, DATASET_TAG: dataset, PRESET_TAG: preset, RUN_DIR_TAG: str(run_dir)}
    if nest_under:
        tags[PARENT_TAG] = nest_under
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    log_dataset_input(client, run.info.run_id, dataset, manifest, "training")
    items = [Param(k, str(v)) for k, v in params.items()]
    for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run.info.run_id, params=items[i:i + 100])
    return run


def mark_running(client, run_id: str) -> None:
    """Set a run found again (to resume it) back to RUNNING."""
    from mlflow.entities import RunStatus

    client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))


def end_run(client, run_id: str, failed: bool = False) -> None:
    """Mark a run FINISHED, or FAILED."""
    from mlflow.entities import RunStatus

    if failed:
        client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.FAILED))
    else:
        client.set_terminated(run_id)


def phase_run(client, parent, phase: str, *, params: dict[str, Any], dataset: str, manifest: dict,
              reopen: bool = True):
    """The nested run of ``phase`` under the pipeline run ``parent``: found again (and marked
    running if ``reopen``), or created with ``params`` and the dataset input."""
    from mlflow.entities import Param

    runs = client.search_runs([parent.info.experiment_id], filter_string=(
        f"tags.mlflow.parentRunId = '{parent.info.run_id}' and tags.`{PHASE_TAG}` = '{phase}'"), max_results=1)
    if runs:
        if reopen:
            mark_running(client, runs[0].info.run_id)
        return runs[0]
    run = client.create_run(parent.info.experiment_id, run_name=phase, tags={
        PARENT_TAG: parent.info.run_id, PHASE_TAG: phase, STAGE_TAG: TRAIN_STAGE})
    log_dataset_input(client, run.info.run_id, dataset, manifest, "training")
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    return run


def finish_phase(client, parent_id: str, phase: str, checkpoint: str | Path, epochs: int,
                 metrics: dict[str, float] | None = None, extra_tags: dict[str, str] | None = None) -> None:
    """Record on the pipeline run that ``phase`` finished: its model, its epochs, and the phase run's
    end-of-phase scores (``test_*``, ``train_*``, ``valid_*`` of ``metrics``) as ``<phase>.<metric>``."""
    import time

    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    scores = [Metric(f"{phase}.{k}", float(v), now, 0) for k, v in (metrics or {}).items()
              if k.startswith(("test_", "train_", "valid_"))]
    tags = {phase_tag(phase): FINISHED, checkpoint_tag(phase): str(checkpoint), epochs_tag(phase): str(epochs),
            **(extra_tags or {})}
    client.log_batch(parent_id, metrics=scores, tags=[RunTag(k, v) for k, v in tags.items()])


def register_model(client, tracking_uri: str, run_id: str, checkpoint: Path) -> str:
    """Log the SING checkpoint as a pyfunc model in the pipeline run, register it, and tag the run
    with it (:data:`REGISTERED_MODEL_TAG`). Returns ``models:/sing/N``."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
        info = log_sing_model(checkpoint)
    version = getattr(info, "registered_model_version", None)
    if version is None:
        versions = client.search_model_versions(f"name='{REGISTERED_MODEL}' and run_id='{run_id}'")
        version = max(int(v.version) for v in versions)
    uri = f"models:/{REGISTERED_MODEL}/{version}"
    client.set_tag(run_id, REGISTERED_MODEL_TAG, uri)
    return uri


def phase_of(run) -> str | None:
    """The training phase a run holds: its :data:`PHASE_TAG` (or an older ``phase`` tag), else a
    phase named in its run name; None for a run of no phase."""
    from .config import PHASES

    tags, name = run.data.tags, (run.info.run_name or "")
    for key in (PHASE_TAG, "phase"):
        if tags.get(key) in PHASES:
            return tags[key]
    for phase in PHASES:
        if phase in name:
            return phase
    return None


def phase_runs(client, parent) -> dict[str, Any]:
    """The runs nested under ``parent``, by the phase each holds (:func:`phase_of`); the rest left out.

    A run tagged with its phase wins over one whose name only mentions it.
    """
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=100)
    found: dict[str, Any] = {}
    for run in sorted(children, key=lambda r: r.data.tags.get(PHASE_TAG) is not None):
        phase = phase_of(run)
        if phase:
            found[phase] = run
    return found


def find_run(client, name_or_id: str):
    """A run by its id, else the latest top-level run of that name in any experiment; None if none."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(name_or_id)
    except MlflowException:
        pass
    experiments = [e.experiment_id for e in client.search_experiments()]
    found = client.search_runs(experiments, filter_string=f"attributes.run_name = '{name_or_id}'",
                               order_by=["attributes.start_time DESC"])
    found = [r for r in found if PARENT_TAG not in r.data.tags]
    return found[0] if found else None


def find_training_run(model: str, tracking_uri: str | None = None, search_paths: bool = True) -> str | None:
    """The MLflow pipeline run of the training that produced ``model``, or None.

    A ``runs:/`` or ``models:/`` URI names its run (the training pipeline logs the model in
    its parent run; a phase run leads to its parent). A checkpoint file under a training run's
    folder (``<run dir>/models/<phase>.pt``) is matched by the run's :data:`RUN_DIR_TAG`
    when ``search_paths`` is true.
    """
    import mlflow

    run_id = None
    if model.startswith("runs:/"):
        configure_mlflow(tracking_uri)
        run_id = model[len("runs:/"):].split("/", 1)[0]
    elif model.startswith("models:/"):
        configure_mlflow(tracking_uri)
        name_version = model[len("models:/"):].split("/")
        client = mlflow.MlflowClient()
        try:
            if len(name_version) >= 2 and name_version[1].isdigit():
                run_id = client.get_model_version(name_version[0], name_version[1]).run_id
            elif "@" in name_version[0]:
                name, alias = name_version[0].split("@", 1)
                run_id = client.get_model_version_by_alias(name, alias).run_id
        except Exception as err:  # MLflow raises its own exception types per store
            log.warning("cannot find the training run of %s: %s", model, err)
            return None
    elif search_paths:
        run_dir = Path(model).resolve().parent.parent
        configure_mlflow(tracking_uri)
        try:
            found = mlflow.search_runs(search_all_experiments=True, output_format="list", max_results=1,
                                       filter_string=f"tags.`{RUN_DIR_TAG}` = '{run_dir}'")
        except Exception as err:
            log.debug("no training run found for %s: %s", model, err)
            return None
        return found[0].info.run_id if found else None
    if not run_id:
        return None
    try:
        run = mlflow.MlflowClient().get_run(run_id)
    except Exception as err:
        log.warning("cannot read run %s: %s", run_id, err)
        return None
    if run.data.tags.get(PHASE_TAG):
        return run.data.tags.get(PARENT_TAG) or run_id
    return run_id


def create_evaluation_run(client, experiment_id: str, name: str, model: str, *, parent_id: str | None = None,
                          start_time: float | None = None):
    """Create an evaluation run of ``model`` (nested under ``parent_id`` when given).

    Args:
        start_time: when the evaluation started, in epoch seconds (None: now).
    Returns:
        the MLflow run.
    """
    tags = {STAGE_TAG: EVALUATE_STAGE, MODEL_TAG: str(model)}
    if parent_id is not None:
        tags[PARENT_TAG] = parent_id
    return client.create_run(experiment_id, start_time=int(start_time * 1000) if start_time else None,
                             run_name=name, tags=tags)
