"""The paper's Table 1 reproduced: five models, spectral L1 and wav MSE on train and test.

Table 1 of Défossez et al. (2018) compares an autoencoder and SING, each trained with the
waveform loss and with the spectral loss, and SING with the spectral loss but without the
time embedding. The autoencoder rows are phase 1 of the matching SING runs, so three
pipeline runs give all five rows:

=================  ==============================  ==========================
run                config overrides                rows
=================  ==============================  ==========================
``wav``            ``train.loss=wav``              autoencoder, SING (wav)
``spectral``       ``train.loss=spectral``         autoencoder, SING (spectral)
``spectral_notime`` ``train.loss=spectral``,        SING (spectral, no time emb.)
                   ``model.time_dim=0``
=================  ==============================  ==========================

The spectral runs also set ``train.spectral_distance=l1`` and ``train.log_offset=1.0``:
the paper's loss, L1 between ``log(1 + |STFT|^2)``, whatever the preset says.

Every row is scored the same way, by :func:`sing_ray.evaluate.score_split` on the run's
checkpoint (the autoencoder reconstructs the real note, SING generates it), so the numbers
do not depend on how each training phase happened to log its metrics.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Row:
    """One row of Table 1: which run and which phase's checkpoint give it."""

    key: str
    model: str          # as printed: Autoencoder / SING
    loss: str           # as printed: waveform / spectral
    run: str            # the pipeline run (a key of RUNS)
    phase: str          # the checkpoint scored: autoencoder or finetune
    note: str = ""


# The spectral runs pin the paper's loss, L1 between log(1 + |STFT|^2), whatever the
# preset or the user's overrides say about its distance and offset.
PAPERS_SPECTRAL = ("train.loss=spectral", "train.spectral_distance=l1", "train.log_offset=1.0")
RUNS: dict[str, tuple[str, ...]] = {
    "wav": ("train.loss=wav",),
    "spectral": PAPERS_SPECTRAL,
    "spectral_notime": (*PAPERS_SPECTRAL, "model.time_dim=0"),
}

ROWS = (
    Row("ae_wav", "Autoencoder", "waveform", "wav", "autoencoder"),
    Row("sing_wav", "SING", "waveform", "wav", "finetune"),
    Row("ae_spectral", "Autoencoder", "spectral", "spectral", "autoencoder"),
    Row("sing_spectral", "SING", "spectral", "spectral", "finetune"),
    Row("sing_spectral_notime", "SING", "spectral", "spectral_notime", "finetune", "no time embedding"),
)

# The paper's Table 1 (train, test); None where the paper prints a dash.
PAPER: dict[str, dict[str, tuple[float, float] | None]] = {
    "ae_wav": {"spectral_l1": (0.026, 0.028), "wav_mse": (0.0002, 0.0003)},
    "sing_wav": {"spectral_l1": (0.075, 0.084), "wav_mse": (0.006, 0.039)},
    "ae_spectral": {"spectral_l1": (0.028, 0.032), "wav_mse": None},
    "sing_spectral": {"spectral_l1": (0.039, 0.051), "wav_mse": None},
    "sing_spectral_notime": {"spectral_l1": (0.050, 0.063), "wav_mse": None},
}

# The paper's claims as comparisons "a < b" of one metric on the test split.
# Each is checked on the paper's own numbers too, so the table says what the paper shows.
ORDERINGS: tuple[tuple[str, str, str, str], ...] = (
    ("spectral loss beats waveform loss for SING (test spectral L1)", "sing_spectral", "sing_wav", "spectral_l1"),
    ("the time embedding helps (test spectral L1)", "sing_spectral", "sing_spectral_notime", "spectral_l1"),
    ("the autoencoder beats SING with the waveform loss (test spectral L1)", "ae_wav", "sing_wav", "spectral_l1"),
    ("the autoencoder beats SING with the spectral loss (test spectral L1)", "ae_spectral", "sing_spectral",
     "spectral_l1"),
    ("with the waveform loss, the autoencoder's wav MSE is far below SING's (test)", "ae_wav", "sing_wav",
     "wav_mse"),
    ("for the autoencoder, waveform loss edges out spectral loss (test spectral L1)", "ae_wav", "ae_spectral",
     "spectral_l1"),
)


def run_overrides(run: str, overrides: Sequence[str] = ()) -> list[str]:
    """The ``--set`` overrides of one of the three runs, after the user's own."""
    if run not in RUNS:
        raise ValueError(f"unknown Table 1 run {run!r}; expected one of {', '.join(RUNS)}")
    return [*overrides, *RUNS[run]]


def score_rows(checkpoints: Mapping[str, str | Path], dataset: str, *, max_train_notes: int | None = None,
               max_test_notes: int | None = None, seed: int = 0, batch_size: int = 8,
               num_workers: int = 1) -> dict[str, dict[str, Any]]:
    """Table 1's numbers for each row from its checkpoint, on the train and test splits.

    Args:
        checkpoints: ``{row key: checkpoint path}``.
        dataset: the ingested dataset the runs trained on.
        max_train_notes, max_test_notes: score a stable hash sample of at most this many notes
            per split (None: all). The train split is the one worth capping.
    Returns:
        ``{row key: {"spectral_l1": (train, test), "wav_mse": (train, test), "num_notes": (train, test)}}``.
    """
    from .evaluate import score_split

    out: dict[str, dict[str, Any]] = {}
    for key, path in checkpoints.items():
        data = Path(path).read_bytes()
        values: dict[str, list] = {"spectral_l1": [], "wav_mse": [], "num_notes": []}
        for split, cap in (("train", max_train_notes), ("test", max_test_notes)):
            notes, _ = score_split(data, dataset, split, max_notes=cap, seed=seed, batch_size=batch_size,
                                   num_workers=num_workers, with_pitch=False, with_reference_pitch=False,
                                   with_embedding=False)
            # Averages weighted by note, as the paper's per-split figures.
            values["spectral_l1"].append(float(notes["spectral_l1"].mean()))
            values["wav_mse"].append(float(notes["wav_mse"].mean()))
            values["num_notes"].append(int(len(notes["note_str"])))
        out[key] = {k: tuple(v) for k, v in values.items()}
        log.info("Table 1 %s: spectral L1 %.4f / %.4f, wav MSE %.5f / %.5f (train / test)", key,
                 *out[key]["spectral_l1"], *out[key]["wav_mse"])
    return out


SILENCE = "silence"
# A row whose train and test spectral L1 both lie this close (relative) to the all-zero
# output's has collapsed to silence: log(1 + |STFT|^2) has zero gradient at a silent
# output, so a model that falls silent early in training stays there.
SILENCE_RTOL = 1e-3


def _silence_batch(batch: dict) -> dict:
    import numpy as np
    import torch

    from .data.dataset import WAV_COLUMN
    from .losses import table1_metrics

    real = torch.from_numpy(np.asarray(batch[WAV_COLUMN], dtype=np.float32))
    metrics = table1_metrics(torch.zeros_like(real), real)
    return {"note_str": np.asarray(batch["note_str"]), **{k: v.double().numpy() for k, v in metrics.items()}}


def silence_baseline(dataset: str, *, max_train_notes: int | None = None, max_test_notes: int | None = None,
                     seed: int = 0) -> dict[str, Any]:
    """Table 1's numbers of a model that outputs silence (all zeros), on the same notes.

    Its spectral L1 is the mean of l(x) = log(1 + |STFT x|^2) over the split and its wav MSE
    the mean energy: the bar any trained row must clear, and what a collapsed row equals.

    Returns:
        ``{"spectral_l1": (train, test), "wav_mse": (train, test), "num_notes": (train, test)}``.
    """
    import numpy as np

    from .evaluate import sample_split

    values: dict[str, list] = {"spectral_l1": [], "wav_mse": [], "num_notes": []}
    for split, cap in (("train", max_train_notes), ("test", max_test_notes)):
        ds, _ = sample_split(dataset, split, cap, seed)
        cols: dict[str, list] = {"spectral_l1": [], "wav_mse": []}
        for batch in ds.map_batches(_silence_batch, batch_format="numpy").iter_batches(batch_format="numpy",
                                                                                        batch_size=None):
            for k in cols:
                cols[k].append(np.asarray(batch[k]))
        spec, wav = (np.concatenate(cols[k]) if cols[k] else np.zeros(0) for k in ("spectral_l1", "wav_mse"))
        values["spectral_l1"].append(float(spec.mean()) if len(spec) else float("nan"))
        values["wav_mse"].append(float(wav.mean()) if len(wav) else float("nan"))
        values["num_notes"].append(int(len(spec)))
    return {k: tuple(v) for k, v in values.items()}


def silent_rows(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Rows whose train and test spectral L1 equal the silence baseline's: collapsed models."""
    silence = results.get(SILENCE, {}).get("spectral_l1")
    if not silence:
        return []
    out = []
    for row in ROWS:
        ours = results.get(row.key, {}).get("spectral_l1")
        if ours and all(math.isfinite(a) and math.isclose(a, b, rel_tol=SILENCE_RTOL)
                        for a, b in zip(ours, silence)):
            out.append(row.key)
    return out


def check_orderings(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Which of the paper's orderings hold in ``results`` (and in the paper itself).

    Returns:
        one dict per claim: ``claim``, ``a``, ``b``, ``metric``, ``ours`` ((a, b) test values),
        ``paper`` ((a, b) or None), ``held`` (ours a < b; None if a value is missing),
        ``paper_held``, ``silent`` (which of a, b collapsed to silence: the check is then vacuous).
    """
    checks = []
    silent = set(silent_rows(results))
    for claim, a, b, metric in ORDERINGS:
        ours = _test_values(results, a, b, metric)
        paper = _test_values(PAPER, a, b, metric)
        checks.append({
            "claim": claim, "a": a, "b": b, "metric": metric, "ours": ours, "paper": paper,
            "held": None if ours is None else bool(ours[0] < ours[1]),
            "paper_held": None if paper is None else bool(paper[0] < paper[1]),
            # A comparison with a model that outputs silence says nothing about the losses.
            "silent": sorted({a, b} & silent),
        })
    return checks


def _test_values(table: Mapping[str, Mapping[str, Any]], a: str, b: str, metric: str):
    va, vb = (table.get(k, {}).get(metric) for k in (a, b))
    if va is None or vb is None:
        return None
    return (float(va[1]), float(vb[1]))


def _fmt(value: float | None, digits: int) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}"


def format_table(results: Mapping[str, Mapping[str, Any]], meta: Mapping[str, Any] | None = None) -> str:
    """Table 1 as Markdown: ours beside the paper's, then the orderings.

    Args:
        results: as returned by :func:`score_rows` (rows may be missing: printed as dashes).
        meta: optional lines about the run (preset, dataset, scale, wall time), printed first.
    """
    lines: list[str] = []
    if meta:
        lines += [f"- {k}: {v}" for k, v in meta.items()] + [""]
    lines += [
        "| model | training loss | spectral L1 train | test | paper train | paper test "
        "| wav MSE train | test | paper train | paper test |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    silent = set(silent_rows(results))
    for row in ROWS:
        ours = results.get(row.key, {})
        paper = PAPER[row.key]
        spec, wav = ours.get("spectral_l1") or (None, None), ours.get("wav_mse") or (None, None)
        pspec, pwav = paper["spectral_l1"] or (None, None), paper["wav_mse"] or (None, None)
        name = row.model + (f" ({row.note})" if row.note else "")
        if row.key in silent:
            name += " **[outputs silence]**"
        lines.append(f"| {name} | {row.loss} | {_fmt(spec[0], 4)} | {_fmt(spec[1], 4)} | {_fmt(pspec[0], 3)} "
                     f"| {_fmt(pspec[1], 3)} | {_fmt(wav[0], 5)} | {_fmt(wav[1], 5)} | {_fmt(pwav[0], 4)} "
                     f"| {_fmt(pwav[1], 4)} |")
    if SILENCE in results:
        spec, wav = results[SILENCE]["spectral_l1"], results[SILENCE]["wav_mse"]
        lines.append(f"| *silence (all-zero output), baseline* | – | {_fmt(spec[0], 4)} | {_fmt(spec[1], 4)} | – | – "
                     f"| {_fmt(wav[0], 5)} | {_fmt(wav[1], 5)} | – | – |")
    lines += ["", "| the paper's ordering (test) | paper | ours | held here |", "| --- | --- | --- | --- |"]
    for check in check_orderings(results):
        digits = 5 if check["metric"] == "wav_mse" else 4
        paper = "–" if check["paper"] is None else " < ".join(_fmt(v, digits) for v in check["paper"])
        if check["ours"] is None:
            ours, held = "–", "–"
        else:
            sign = "<" if check["held"] else "≥"
            ours = f" {sign} ".join(_fmt(v, digits) for v in check["ours"])
            held = "yes" if check["held"] == check["paper_held"] else "**no**"
            if check["silent"]:
                held += f" (vacuous: {', '.join(check['silent'])} outputs silence)"
        lines.append(f"| {check['claim']} | {paper} | {ours} | {held} |")
    if silent:
        lines += ["", f"Rows marked [outputs silence] ({', '.join(sorted(silent))}) score within "
                      f"{SILENCE_RTOL:.1%} of the all-zero output on train and test: the model collapsed to "
                      "silence and never left it (docs/evaluation.md, \"Table 1 reproduced\", says why "
                      "each loss can)."]
    return "\n".join(lines) + "\n"


def write_table(results: Mapping[str, Mapping[str, Any]], out: str | Path, meta: Mapping[str, Any] | None = None,
                stem: str = "table1") -> dict[str, Path]:
    """Write ``<stem>.md`` and ``<stem>.json`` (rows, paper values, orderings, meta). Returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / f"{stem}.md", "json": out / f"{stem}.json"}
    paths["markdown"].write_text("# Table 1 reproduced\n\n" + format_table(results, meta))
    data = {"meta": dict(meta or {}), "rows": {r.key: {"model": r.model, "loss": r.loss, "run": r.run,
                                                       "phase": r.phase, "note": r.note,
                                                       **{k: list(v) for k, v in results.get(r.key, {}).items()}}
                                               for r in ROWS},
            "paper": {k: {m: (list(v) if v else None) for m, v in row.items()} for k, row in PAPER.items()},
            "silence": {k: list(v) for k, v in results.get(SILENCE, {}).items()} or None,
            "silent_rows": silent_rows(results),
            "orderings": check_orderings(results)}
    paths["json"].write_text(json.dumps(data, indent=2, default=str) + "\n")
    return paths


def log_table(results: Mapping[str, Mapping[str, Any]], paths: Mapping[str, Path]) -> None:
    """Log the table into the active MLflow run: ``<row>_<metric>_<split>`` metrics and the files."""
    import mlflow

    metrics = {}
    for key, row in results.items():
        for metric in ("spectral_l1", "wav_mse"):
            for split, value in zip(("train", "test"), row.get(metric, ())):
                if value is not None and math.isfinite(value):
                    metrics[f"{key}_{metric}_{split}"] = float(value)
    mlflow.log_metrics(metrics)
    for path in paths.values():
        mlflow.log_artifact(str(path), artifact_path="table1")


TrainFn = Callable[..., Mapping[str, Mapping[str, Any]]]
TABLE_METRICS = ("spectral_l1", "wav_mse")


def rows_from_phase_metrics(phases: Mapping[str, Mapping[str, Any]], run: str) -> dict[str, dict[str, Any]]:
    """The rows of one run from its phases' end-of-phase scores, where all four are present.

    Args:
        phases: ``{phase: {"checkpoint": path, "metrics": {"train_spectral_l1": ..., ...}}}``.
        run: the run's key in :data:`RUNS`.
    Returns:
        ``{row key: {"spectral_l1": (train, test), "wav_mse": (train, test)}}`` for the rows
        of ``run`` whose phase reported ``train_*`` and ``test_*`` of both metrics.
    """
    out = {}
    for row in ROWS:
        metrics = phases.get(row.phase, {}).get("metrics", {}) if row.run == run else {}
        keys = [f"{split}_{m}" for m in TABLE_METRICS for split in ("train", "test")]
        values = [metrics.get(k) for k in keys]
        if all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            out[row.key] = {m: (float(metrics[f"train_{m}"]), float(metrics[f"test_{m}"])) for m in TABLE_METRICS}
    return out


def reproduce_table1(dataset: str, *, preset: str = "table1", overrides: Sequence[str] = (),
                     out: str | Path = "table1", runs: Sequence[str] = tuple(RUNS), name: str | None = None,
                     max_train_notes: int | None = None, max_test_notes: int | None = None,
                     tracking_uri: str | None = None, experiment: str = "sing-ray-table1",
                     train_fn: TrainFn | None = None, seed: int = 0) -> dict[str, Any]:
    """Train the runs, gather the five rows, write and log the table.

    Each row's numbers are its phase's end-of-phase scores (Table 1's metrics on the whole
    train and test splits, computed by the training loop on the final weights). A row whose
    phase did not report them is scored from its checkpoint with :func:`score_rows`.

    Args:
        dataset: an ingested dataset folder or URI.
        preset: the model/training preset of every run (``table1``, the hour-scale one where
            every row learns; ``tiny``, ``quick``, ``small``, ``paper``).
        overrides: ``--set`` overrides applied to every run before its own (e.g. epochs).
        out: folder for ``table1.md``, ``table1.json`` and the runs' Ray Train storage.
        runs: the runs to train (default all three); rows of runs not trained are dashes.
        name: prefix of the training runs' names (default ``table1-<preset>-<time>``); running
            again with the same name resumes those runs and skips their finished phases.
        max_train_notes, max_test_notes: caps on the notes of a checkpoint-scored row.
        tracking_uri, experiment: MLflow; one parent run holds the training runs, nested.
        train_fn: ``train_fn(cfg, dataset, run_name=..., out=..., autoencoder_from=...) ->
            {phase: {"checkpoint", "metrics"}}``;
            default :func:`train_run` (the project's :func:`sing_ray.train.run_pipeline`).
    Returns:
        ``{"results", "orderings", "paths", "meta", "run_id", "checkpoints"}``.
    """
    import mlflow

    from .config import load_config
    from .data.dataset import load_manifest
    from .tracking import PRESET_TAG, STAGE_TAG, TABLE1_STAGE, configure_mlflow, log_dataset_input

    started = time.monotonic()
    out = Path(out)
    train_fn = train_fn or train_run
    name = name or f"table1-{preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    configure_mlflow(tracking_uri, experiment)
    checkpoints: dict[str, Path] = {}
    results: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    with mlflow.start_run(run_name=name) as parent:
        mlflow.set_tags({STAGE_TAG: TABLE1_STAGE, PRESET_TAG: preset})
        mlflow.log_params({"dataset": str(dataset), "preset": preset, "overrides": " ".join(overrides) or "-",
                           "runs": ",".join(runs)})
        log_dataset_input(mlflow.MlflowClient(), parent.info.run_id, str(dataset), load_manifest(dataset), "training")
        for run in runs:
            run_set = run_overrides(run, overrides)
            cfg = load_config(preset, overrides=run_set)
            log.info("Table 1: training run %r (%s)", run, " ".join(run_set))
            t0 = time.monotonic()
            # The ablation changes only the sequence model: it starts from the spectral run's
            # autoencoder, so the two rows differ by the time embedding alone.
            shared = out / "runs" / f"{name}-spectral" if run == "spectral_notime" and "spectral" in seconds else None
            phases = train_fn(cfg, dataset, run_name=f"{name}-{run}", out=out / "runs", autoencoder_from=shared)
            seconds[run] = time.monotonic() - t0
            for row in ROWS:
                if row.run != run:
                    continue
                if row.phase not in phases:
                    raise RuntimeError(f"run {run!r} produced no {row.phase} phase (got {sorted(phases)})")
                checkpoints[row.key] = Path(phases[row.phase]["checkpoint"])
            results.update(rows_from_phase_metrics(phases, run))
        # On the whole splits, as the end-of-phase scores: the bar every row must clear.
        results[SILENCE] = silence_baseline(dataset)
        missing = {k: v for k, v in checkpoints.items() if k not in results}
        if missing:
            log.info("Table 1: scoring %s from their checkpoints", ", ".join(missing))
            results.update(score_rows(missing, dataset, max_train_notes=max_train_notes,
                                      max_test_notes=max_test_notes, seed=seed))
        meta = {"dataset": str(dataset), "preset": preset, "overrides": " ".join(overrides) or "none",
                "runs": ", ".join(f"{name}-{r}" for r in runs),
                "training wall time per run (s)": ", ".join(f"{k}: {v:.0f}" for k, v in seconds.items()),
                "total wall time (s)": f"{time.monotonic() - started:.0f}",
                "scored": "end-of-phase scores on the whole train and test splits"
                          + (f"; from checkpoints: {', '.join(missing)}" if missing else ""),
                "MLflow run": parent.info.run_id}
        paths = write_table(results, out, meta)
        log_table(results, paths)
    log.info("Table 1 written to %s", paths["markdown"])
    return {"results": results, "orderings": check_orderings(results), "paths": paths, "meta": meta,
            "run_id": parent.info.run_id, "checkpoints": checkpoints}


def train_run(cfg, dataset: str, *, run_name: str, out: Path,
              autoencoder_from: Path | None = None) -> dict[str, dict[str, Any]]:
    """Train one configuration with :func:`sing_ray.train.run_pipeline`, nested in the active MLflow run.

    The model is not registered: the ablations must not become ``models:/sing/latest``.

    Args:
        cfg: the run's resolved config.
        run_name: the training run's name (an existing one resumes).
        out: Ray Train storage folder of the run.
        autoencoder_from: a run folder whose finished autoencoder this run takes as its phase 1
            (:func:`sing_ray.train.run_pipeline`).
    Returns:
        ``{phase: {"checkpoint": path, "metrics": {...}}}`` for the three phases.
    """
    from dataclasses import replace

    from .train import run_pipeline

    # tracking_uri None: the pipeline nests its run under the caller's active MLflow run.
    cfg = replace(cfg, run=replace(cfg.run, run_name=run_name, storage_path=str(out), tracking_uri=None))
    result = run_pipeline(cfg, dataset, register=False, autoencoder_from=autoencoder_from)
    return {phase: {"checkpoint": p.checkpoint, "metrics": dict(p.metrics)} for phase, p in result.phases.items()}
