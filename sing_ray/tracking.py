"""MLflow helpers: where runs go, how the final model is logged, and how model URIs resolve.

Embedded default: a SQLite store ``mlflow.db`` in the working folder (MLflow's
own default). ``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` points elsewhere,
e.g. the tracking server on a cluster's head node.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from .errors import UserError

log = logging.getLogger(__name__)

REGISTERED_MODEL = "sing"
CHECKPOINT_ARTIFACT = "checkpoint"
# MLflow 3's UI opens an experiment in the view its kind names: without the tag it
# lands on the GenAI overview (traces, judges, prompts) instead of the training runs.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


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
