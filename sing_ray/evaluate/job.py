"""The Ray job: generate and score a split's notes on an actor pool, then report, draw and log.

:func:`evaluate_model` is ``sing-ray evaluate``: it scores with Ray Data ``map_batches`` on an
actor pool that holds the model (:func:`score_split`), so audio never travels to the driver;
only per-note metrics and embeddings come back. :func:`score_split_here` scores a few dozen
notes on the driver instead (the quick start, ``bench quality``).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import UserError
from .metrics import note_metrics
from .mlflow_run import log_evaluation
from .nearest_key import NEAREST_KEY_SPLIT, nearest_key_metrics, nearest_key_report, shift_nearest_keys
from .note_model import build_note_model, check_vocabulary
from .notes import load_nearest_keys, sample_candidates, sample_split
from .plots import draw_figures
from .report import definitions, write_report
from .summary import scores_like_silence, summarize

log = logging.getLogger(__name__)

# Training notes scored beside the held-out ones by default (capped at the held-out count).
DEFAULT_TRAIN_NOTES = 70
# The metadata columns a scored note keeps beside its metrics.
PASSTHROUGH_COLUMNS = ("note_str", "instrument_str", "instrument_family_str", "pitch", "velocity")


class NoteScorer:
    """Ray Data UDF (actor pool): generate each note of a batch and score it against the real one.

    Args:
        checkpoint: the checkpoint's bytes, or a Ray ObjectRef to them (one copy in the object
            store for all actors, so workers need no shared file system).
        with_pitch, with_reference_pitch, with_embedding: as :func:`note_metrics`.
        device: torch device of the model.
        nearest_keys: a :class:`NearestKeys` (or a Ray ObjectRef to one): also score the
            nearest-key sampler on each note (:func:`nearest_key_metrics`).
    """

    def __init__(self, checkpoint, with_pitch: bool = True, with_reference_pitch: bool = True,
                 with_embedding: bool = True, device: str = "cpu", nearest_keys=None):
        import ray

        data = ray.get(checkpoint) if isinstance(checkpoint, ray.ObjectRef) else checkpoint
        self.fn, _ = build_note_model(data, device=device)
        self.options = dict(with_pitch=with_pitch, with_reference_pitch=with_reference_pitch,
                            with_embedding=with_embedding)
        self.nearest_keys = ray.get(nearest_keys) if isinstance(nearest_keys, ray.ObjectRef) else nearest_keys

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Args: a numpy batch with ``wav`` (B, T) and the metadata. Returns: per-note metric columns."""
        from ..data.dataset import WAV_COLUMN

        real = np.asarray(batch[WAV_COLUMN], dtype=np.float32)
        generated = self.fn(batch["instrument_str"], batch["pitch"], batch["velocity"], real)
        metrics = note_metrics(generated, real, batch["pitch"], **self.options)
        out = {k: np.asarray(batch[k]) for k in PASSTHROUGH_COLUMNS}
        out.update(metrics)
        if self.nearest_keys is not None:
            out.update(nearest_key_metrics(real, batch["note_str"], batch["pitch"], self.nearest_keys,
                                           lts_db=metrics["lts_db"], with_pitch=self.options["with_pitch"],
                                           with_embedding=self.options["with_embedding"]))
        return out


@dataclass
class EvaluationResult:
    """What :func:`evaluate_model` produced.

    Attributes:
        report: the JSON-able report (``summary`` holds overall / by_family / by_octave).
        notes: per-note columns (metrics and metadata), sorted by ``note_str``.
        paths: files written (``markdown``, ``json``, ``notes``, and figures by name).
        run_id: the MLflow run the report was logged to, or None.
        train_notes: the training notes' per-note columns (``report["train_notes"]``), or None.
    """

    report: dict
    notes: dict[str, np.ndarray]
    paths: dict[str, Path] = field(default_factory=dict)
    run_id: str | None = None
    train_notes: dict[str, np.ndarray] | None = None


def scorer_cpus(cluster_cpus: float, num_workers: int) -> float:
    """The CPUs each of ``num_workers`` scoring actors reserves: one, unless that would leave
    no CPU for the tasks that read the notes they score (``sing-ray evaluate --num-cpus 1``
    waited forever); then a share of what is left after one (none on a 1-CPU Ray). A cluster
    with no CPU yet (an autoscaling one) gets one per actor, as it will start them."""
    if 1 <= cluster_cpus < num_workers + 1:
        return max(0.0, (cluster_cpus - 1) / num_workers)
    return 1.0


def score_split(checkpoint: bytes, dataset: str, split: str = "test", *, max_notes: int | None = None,
                seed: int = 0, batch_size: int = 8, num_workers: int = 1, use_gpu: bool = False,
                with_pitch: bool = True, with_reference_pitch: bool = True,
                with_embedding: bool = True, nearest_key: bool = False) -> tuple[dict[str, np.ndarray], int | None]:
    """Score every note of one split (or a stable sample of ``max_notes``) with Ray Data.

    Args:
        checkpoint: checkpoint bytes (SING or Autoencoder).
        dataset: an ingested dataset folder or URI.
        split: ``train``, ``valid`` or ``test``.
        max_notes: at most this many notes, chosen by :func:`keep_note` (None: all).
        batch_size: notes per model call.
        num_workers: actors in the pool, each holding one copy of the model.
        nearest_key: also score the nearest-key sampler (``nk_*`` columns,
            :func:`nearest_key_metrics`): the sample's possible notes are planned from the
            metadata alone (:func:`sample_candidates`), their sources read once on the driver
            and shipped to the actors through the object store.
    Returns:
        ``(notes, split_size)``: per-note columns sorted by note_str, and the split's size
        from the manifest (None if the manifest does not say).
    """
    import ray

    ds, split_size = sample_split(dataset, split, max_notes, seed)
    keys_ref = None
    if nearest_key:
        keys = load_nearest_keys(dataset, sample_candidates(dataset, split, max_notes, seed))
        log.info("nearest keys: %d training notes for %s [%s]", len(keys.audio), dataset, split)
        keys_ref = ray.put(keys)
    ref = ray.put(checkpoint)
    cpus = scorer_cpus(ray.cluster_resources().get("CPU", 0), num_workers)
    if cpus < 1:
        log.info("%d scoring actor(s) of %.2f reserved CPU each, leaving one for reading the notes",
                 num_workers, cpus)
    scored = ds.map_batches(
        NoteScorer, batch_format="numpy", batch_size=batch_size,
        fn_constructor_kwargs=dict(checkpoint=ref, with_pitch=with_pitch,
                                   with_reference_pitch=with_reference_pitch,
                                   with_embedding=with_embedding, device="cuda" if use_gpu else "cpu",
                                   nearest_keys=keys_ref),
        compute=ray.data.ActorPoolStrategy(size=num_workers), num_cpus=cpus, num_gpus=1 if use_gpu else 0)
    columns: dict[str, list[np.ndarray]] = {}
    for batch in scored.iter_batches(batch_format="numpy", batch_size=None):
        for k, v in batch.items():
            columns.setdefault(k, []).append(np.asarray(v))
    if not columns:
        raise UserError(f"{dataset}: the {split} split holds no notes to evaluate")
    notes = {k: np.concatenate(v) for k, v in columns.items()}
    order = np.argsort(notes["note_str"].astype(str), kind="stable")
    return {k: v[order] for k, v in notes.items()}, split_size


def score_split_here(checkpoint: bytes, dataset: str, split: str = "test", *, max_notes: int = 40,
                     seed: int = 0, with_pitch: bool = True, with_reference_pitch: bool = True,
                     with_embedding: bool = False,
                     nearest_key: bool = False) -> tuple[dict[str, np.ndarray], int | None, dict[str, np.ndarray]]:
    """:func:`score_split` for a few dozen notes: one Ray Data read, then generation and scoring here.

    The same notes (:func:`sample_split`) and the same numbers as :func:`score_split`, without
    its actor pool: for a few dozen notes, starting actors (a model load and the pitch
    tracker's first call in each) costs more than they save, and the audio can stay for
    figures instead of being read again. The notes' audio comes to the driver: keep
    ``max_notes`` small (256 KB per note and side).

    Args:
        checkpoint: checkpoint bytes (SING or Autoencoder).
        dataset, split: what to score.
        max_notes: at most this many notes, chosen by :func:`keep_note`.
        nearest_key: also score the nearest-key sampler (``nk_*`` columns, :func:`nearest_key_metrics`).
    Returns:
        ``(notes, split_size, audio)``: per-note columns sorted by note_str (as :func:`score_split`),
        the split's size, and ``{"real": (N, T), "generated": (N, T)}`` in the same order, with
        ``"nearest"`` (N, T) (the nearest key shifted to each note's pitch, zeros where none) when
        ``nearest_key``. UserError when the split holds no notes.
    """
    from ..data.dataset import WAV_COLUMN

    sample, split_size = sample_split(dataset, split, max_notes, seed)
    rows = sample.take_all()
    if not rows:
        raise UserError(f"{dataset}: the {split} split holds no notes to evaluate")
    rows.sort(key=lambda r: str(r["note_str"]))
    columns = {k: np.array([r[k] for r in rows]) for k in PASSTHROUGH_COLUMNS}
    real = np.stack([np.asarray(r[WAV_COLUMN], dtype=np.float32) for r in rows])
    fn, _ = build_note_model(checkpoint)
    generated = fn(columns["instrument_str"], columns["pitch"], columns["velocity"], real)
    columns.update(note_metrics(generated, real, columns["pitch"], with_pitch=with_pitch,
                                with_reference_pitch=with_reference_pitch, with_embedding=with_embedding))
    audio = {"real": real, "generated": generated}
    if nearest_key:
        keys = load_nearest_keys(dataset, columns)
        audio["nearest"], _ = shift_nearest_keys(keys, columns["note_str"], columns["pitch"], real.shape[1])
        columns.update(nearest_key_metrics(real, columns["note_str"], columns["pitch"], keys,
                                           lts_db=columns["lts_db"], with_pitch=with_pitch,
                                           with_embedding=with_embedding, shifted=audio["nearest"]))
    return columns, split_size, audio


def evaluate_model(model: str | Path, dataset: str, split: str = "test", *, out: str | Path | None = None,
                   max_notes: int | None = None, seed: int = 0, batch_size: int = 8, num_workers: int = 1,
                   use_gpu: bool = False, with_pitch: bool = True, with_reference_pitch: bool = True,
                   with_embedding: bool = True, figures: bool = True, tracking_uri: str | None = None,
                   experiment: str | None = "sing-ray", log_to_mlflow: bool = True,
                   training_run: str | None = None, nearest_key: bool = True,
                   train_notes: int | None = None) -> EvaluationResult:
    """Evaluate a model on a dataset split: metrics, report, figures, MLflow run.

    Needs Ray initialised (or starts a default local one).

    Args:
        model: a checkpoint path or an MLflow URI (``models:/sing/3``, ``runs:/<id>/sing``).
        dataset: an ingested dataset folder or URI.
        split: the split scored (the paper's Table 1 uses ``test`` and ``train``).
        out: folder for the report and figures (default ``evaluation/<model stem>-<split>``).
        max_notes: score at most this many notes (a stable hash sample).
        figures: draw the embedding, spectrogram and training-curve figures.
        tracking_uri, experiment: where the MLflow run goes; ``log_to_mlflow=False`` skips it.
        training_run: the MLflow parent run of the model's training, for the training curves;
            found from a ``models:/`` or ``runs:/`` URI when not given.
        nearest_key: also score the nearest-key sampler on every note (``nk_*`` columns).
        train_notes: also score a stable sample of this many training notes, the same way, to
            set fitting beside generalising (0: none; None: :data:`DEFAULT_TRAIN_NOTES`, at
            most as many as the notes scored). Not when ``split`` is the training split.
    Returns:
        an :class:`EvaluationResult` (the training notes' columns in ``train_notes``).
    """
    from ..data.dataset import load_manifest
    from ..tracking import find_training_run, resolve_model

    started, started_at = time.monotonic(), time.time()
    path = resolve_model(model, tracking_uri)
    checkpoint = path.read_bytes()
    _, info = build_note_model(checkpoint)
    manifest = load_manifest(dataset)
    if info["model_class"] == "SING":
        check_vocabulary(info["instruments"], manifest.get("instruments", []))
    out = Path(out) if out is not None else Path("evaluation") / f"{_slug(model)}-{split}"
    log.info("evaluating %s (%s) on %s [%s]%s", model, info["model_class"], dataset, split,
             f", at most {max_notes} notes" if max_notes else "")
    options = dict(seed=seed, batch_size=batch_size, num_workers=num_workers, use_gpu=use_gpu,
                   with_pitch=with_pitch, with_reference_pitch=with_reference_pitch,
                   with_embedding=with_embedding, nearest_key=nearest_key)
    notes, split_size = score_split(checkpoint, dataset, split, max_notes=max_notes, **options)
    num_train = (min(DEFAULT_TRAIN_NOTES, len(notes["note_str"])) if train_notes is None else int(train_notes))
    train: dict[str, np.ndarray] | None = None
    if num_train > 0 and split != NEAREST_KEY_SPLIT:
        log.info("scoring %d training notes beside them", num_train)
        train, train_size = score_split(checkpoint, dataset, NEAREST_KEY_SPLIT, max_notes=num_train, **options)
    report: dict[str, Any] = {
        "model": str(model), "checkpoint": str(path), "model_class": info["model_class"],
        "phase": info["phase"], "dataset": str(dataset), "split": split,
        "num_notes": int(len(notes["note_str"])), "split_size": split_size, "max_notes": max_notes,
        "seed": seed, "summary": summarize(notes),
        "definitions": definitions(),
    }
    if nearest_key:
        report["nearest_key"] = nearest_key_report(notes)
        _warn_missing_nearest_keys(report["nearest_key"], split)
    if train is not None:
        report["train_notes"] = {"num_notes": int(len(train["note_str"])), "split_size": train_size,
                                 "max_notes": num_train, "summary": summarize(train)}
        if nearest_key:
            report["train_notes"]["nearest_key"] = nearest_key_report(train)
            _warn_missing_nearest_keys(report["train_notes"]["nearest_key"], NEAREST_KEY_SPLIT)
    paths: dict[str, Path] = {}
    if figures:
        training_run = training_run or find_training_run(str(model), tracking_uri, search_paths=log_to_mlflow)
        paths.update(draw_figures(checkpoint, info, notes, dataset, split, out, tracking_uri, training_run))
        report["figures"] = [str(p) for p in paths.values()]
    report["seconds"] = time.monotonic() - started
    report["started_at"] = started_at
    paths.update(write_report(report, out, notes, train_notes=train))
    run_id = None
    if log_to_mlflow:
        run_id = log_evaluation(report, paths, tracking_uri, experiment, manifest=manifest)
        report["mlflow_run_id"] = run_id
    overall = report["summary"]["overall"]
    log.info("%s [%s], %d notes: spectral L1 %.4f (silence's %.4f), wav MSE %.5f, %d near-silent; report in %s",
             model, split, overall["num_notes"], overall["spectral_l1"], overall["spectral_l1_silence"],
             overall["wav_mse"], overall["num_near_silent"], paths["markdown"])
    if scores_like_silence(overall):
        log.warning("%s scores no better than silence on %s [%s]", model, dataset, split)
    return EvaluationResult(report=report, notes=notes, paths=paths, run_id=run_id, train_notes=train)


def _warn_missing_nearest_keys(info: Mapping[str, Any], split: str) -> None:
    if info["num_missing"]:
        log.warning("%d of %d %s notes have no nearest key (no other %s pitch of their instrument at their "
                    "velocity), e.g. %s: their nk_ columns are NaN and the nearest key's figures leave them out",
                    info["num_missing"], info["num_notes"], split, info["source_split"],
                    ", ".join(info["missing"][:3]))


def _slug(model: str | Path) -> str:
    """A folder name for a model: the file stem of a path, the URI with separators replaced."""
    text = str(model)
    if ":/" not in text:
        return Path(text).stem or "model"
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in text).strip("_") or "model"
