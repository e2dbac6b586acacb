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


def resolve_tracking_uri(uri: str | None = None) -> str:
    """``uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def configure_mlflow(uri: str | None = None, experiment: str | None = None) -> str:
    """Point MLflow at the resolved store (and experiment). Returns the tracking URI."""
    import mlflow

    uri = resolve_tracking_uri(uri)
    mlflow.set_tracking_uri(uri)
    if experiment:
        mlflow.set_experiment(experiment)
    return uri


def log_sing_model(checkpoint_path: str | Path, registered_name: str | None = REGISTERED_MODEL,
                   name: str = "sing"):
    """Log a SING checkpoint as an MLflow pyfunc model (no pickles) into the active run.

    Registers it under ``registered_name`` (the Model Registry) unless None.
    Returns MLflow's ModelInfo.
    """
    import mlflow

    code = Path(__file__).with_name("mlflow_model.py")
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(code),
        artifacts={CHECKPOINT_ARTIFACT: str(checkpoint_path)},
        registered_model_name=registered_name,
        pip_requirements=["sing-ray", "torch", "mlflow"],
    )


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
