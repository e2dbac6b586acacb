"""The evaluation's MLflow run (:func:`sing_ray.tracking.create_evaluation_run`): params, overall
metrics, the report and figures as artifacts."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from .metrics import EMBEDDING_NAME
from .nearest_key import NEAREST_KEY_SPLIT


def log_evaluation(report: Mapping[str, Any], paths: Mapping[str, Path], tracking_uri: str | None = None,
                   experiment: str | None = "sing-ray", run_name: str | None = None,
                   nested: bool = False, manifest: Mapping[str, Any] | None = None) -> str:
    """Log an evaluation to MLflow: params, overall metrics (``<split>_<metric>``), report and figures.

    The training notes' overall metrics (``report["train_notes"]``) go in as ``train_<metric>``.

    The run starts when the evaluation did (``report["started_at"]``, epoch seconds), so the
    UI shows how long the work took. With the dataset's ``manifest``, the dataset is the
    run's MLflow dataset input.

    Returns:
        the run id.
    """
    import mlflow
    from mlflow.tracking.fluent import _get_experiment_id

    from ..tracking import configure_mlflow, create_evaluation_run, log_dataset_input

    configure_mlflow(tracking_uri, experiment)
    client = mlflow.MlflowClient()
    split = report["split"]
    name = run_name or f"evaluate-{Path(str(report['model'])).name}-{split}"
    parent = mlflow.active_run() if nested else None
    if parent is not None:
        created = create_evaluation_run(client, parent.info.experiment_id, name, str(report["model"]),
                                        parent_id=parent.info.run_id, start_time=report.get("started_at"))
    else:
        created = create_evaluation_run(client, _get_experiment_id(), name, str(report["model"]),
                                        start_time=report.get("started_at"))
    if manifest is not None:
        log_dataset_input(client, created.info.run_id, str(report["dataset"]), dict(manifest), f"evaluation ({split})")
    with mlflow.start_run(run_id=created.info.run_id, nested=parent is not None) as run:
        mlflow.log_params({"model": str(report["model"]), "dataset": str(report["dataset"]), "split": split,
                           "num_notes": report["num_notes"], "max_notes": report.get("max_notes"),
                           "model_class": report.get("model_class"), "embedding": EMBEDDING_NAME,
                           "train_notes": (report.get("train_notes") or {}).get("num_notes", 0)})
        groups = [(split, report["summary"]["overall"])]
        if report.get("train_notes"):
            groups.append((NEAREST_KEY_SPLIT, report["train_notes"]["summary"]["overall"]))
        metrics = {f"{name}_{k}": float(v) for name, overall in groups for k, v in overall.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}
        mlflow.log_metrics(metrics)
        for path in paths.values():
            mlflow.log_artifact(str(path), artifact_path="evaluation")
        return run.info.run_id
