"""The whole pipeline at small scale: SoundFont dataset, ingest, three phases, a sample library.

Every stage reads and writes storage paths under one working folder, so the
chain can be interrupted and run again: the SoundFont build skips finished
notes, an ingested dataset is reused, training resumes its named run (finished
phases are skipped, the interrupted one continues from its last checkpoint),
and rendering renders only what the library lacks.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from . import soundfont
from .config import load_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scale:
    """How much of everything the quick start makes."""

    programs: tuple[int, ...]
    pitches: tuple[int, ...]
    velocities: tuple[int, ...]
    preset: str
    epochs: tuple[int, int, int]
    render_pitches: str
    render_velocities: str
    render_instruments: str | None = None   # None: every instrument of the model
    overrides: tuple[str, ...] = ()


SCALES = {
    # The README's quick start: 14 GM programs covering the 11 NSynth families,
    # 13 pitches, 5 velocities (910 notes), the tiny model, a full-keyboard library.
    # Epochs: 3/3/2 took 2 min 44 s on an idle 2-core machine and rendered notes 30 dB
    # quieter than the data; 15/15/8 uses a quarter of the 20-minute budget idle,
    # leaving room for a busy machine.
    "default": Scale(programs=soundfont.DEFAULT_PROGRAMS, pitches=soundfont.DEFAULT_PITCHES,
                     velocities=soundfont.DEFAULT_VELOCITIES, preset="tiny", epochs=(15, 15, 8),
                     render_pitches="36:84:4", render_velocities="25,75,127"),
    # The end-to-end test: 4 programs x 6 pitches x 2 velocities, one epoch per phase.
    "smallest": Scale(programs=(0, 24, 40, 73), pitches=(48, 52, 55, 60, 64, 67), velocities=(25, 127),
                      preset="tiny", epochs=(1, 1, 1), render_pitches="48:60:12", render_velocities="127",
                      render_instruments="keyboard_acoustic_000,guitar_acoustic_000"),
}


@dataclass
class QuickstartResult:
    workdir: Path
    source: Path
    dataset: Path
    library: Path
    run_id: str
    model_uri: str | None
    tracking_uri: str
    render: "object"            # render.RenderSummary
    stage_seconds: dict[str, float] = field(default_factory=dict)


def run_quickstart(workdir: str | Path = "quickstart", scale: str = "default", *,
                   run_name: str = "quickstart", tracking_uri: str | None = None, workers: int = 2,
                   overrides: Sequence[str] = (), progress: bool = True) -> QuickstartResult:
    """Run the chain into ``workdir``. Needs Ray initialised (``runtime.init_ray``).

    Args:
        workdir: folder of everything the run makes: ``nsynth/`` (SoundFont notes),
            ``dataset/`` (ingested), ``runs/`` (training), ``library/`` (rendered).
        scale: ``default`` or ``smallest`` (see :data:`SCALES`).
        run_name: the MLflow parent run; the same name resumes it.
        tracking_uri: MLflow store (None: ``$MLFLOW_TRACKING_URI``, else ``./mlflow.db``).
        workers: Ray Train workers per phase and rendering actors.
        overrides: extra ``--set`` strings for the training config.
    Returns:
        where everything went.
    """
    from .data.dataset import load_manifest
    from .data.ingest import ingest
    from .render import plan_render, render_library
    from .train.pipeline import run_pipeline

    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    s = SCALES[scale]
    workdir = Path(workdir).resolve()
    source, dataset, library = workdir / "nsynth", workdir / "dataset", workdir / "library"
    timings: dict[str, float] = {}

    def stage(name: str, number: int):
        log.info("quickstart [%d/4] %s", number, name)
        return time.perf_counter()

    t = stage("dataset from the FluidR3 SoundFont", 1)
    soundfont.build_soundfont_dataset(source, programs=s.programs, pitches=s.pitches,
                                      velocities=s.velocities, num_workers=0, progress=progress)
    timings["soundfont"] = time.perf_counter() - t

    t = stage("ingest", 2)
    if (dataset / "_SUCCESS").exists():
        log.info("reusing the dataset already ingested at %s", dataset)
    else:
        ingest(str(source), str(dataset), progress=progress)
    manifest = load_manifest(str(dataset))
    timings["ingest"] = time.perf_counter() - t

    t = stage("training: autoencoder, sequence, finetune", 3)
    epoch_sets = [f"train.{p}.epochs={n}" for p, n in zip(("autoencoder", "sequence", "finetune"), s.epochs)]
    run_sets = [f"run.run_name={run_name}", f"run.storage_path={workdir / 'runs'}",
                f"run.num_workers={workers}"]
    if tracking_uri:
        run_sets.append(f"run.tracking_uri={tracking_uri}")
    cfg = load_config(s.preset, overrides=[*epoch_sets, *s.overrides, *run_sets, *overrides])
    result = run_pipeline(cfg, str(dataset))
    timings["train"] = time.perf_counter() - t

    t = stage("sample library", 4)
    plan = plan_render(result.checkpoint, library, instruments=s.render_instruments or "all",
                       pitches=s.render_pitches, velocities=s.render_velocities)
    summary = render_library(plan, workers=workers)
    timings["render"] = time.perf_counter() - t
    counts = manifest["counts"]
    log.info("quickstart finished in %.0f s (%s); dataset: %d notes listed, %d accepted, %d rejected",
             sum(timings.values()), ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()),
             counts["listed"], counts["accepted"], counts["rejected"])
    return QuickstartResult(workdir=workdir, source=source, dataset=dataset, library=library,
                            run_id=result.run_id, model_uri=result.model_uri,
                            tracking_uri=result.tracking_uri,
                            render=summary, stage_seconds=timings)
