"""The whole pipeline at small scale: SoundFont dataset, ingest, three phases, a sample library.

Every stage reads and writes storage paths under one working folder, so the
chain can be interrupted and run again: the SoundFont build skips finished
notes, an ingested dataset is reused, training resumes its named run (finished
phases are skipped, the interrupted one continues from its last checkpoint),
and rendering renders only what the library lacks. The library is rendered with the dataset
beside it (``compare/``: each note's nearest key and real note, A/B buttons on its page).

The last stage shows what was made: the model is scored on held-out test notes
(in tune, loudness against the real notes, spectral L1 against silence's, timbre distances,
each beside the nearest-key sampler's), and
the library folder gets a spectrogram sheet (real | generated | nearest key), a demo
WAV (each instrument plays a scale) and a compare demo (each instrument plays it from the
dataset's notes, then from the model); all and the scores go to the training run in MLflow.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from . import soundfont
from .config import load_config
from .errors import UserError

log = logging.getLogger(__name__)

# The held-out check: at most this many test notes, a stable sample (evaluate.keep_note) when the
# split holds more. The default scale's whole test split is 70 notes, so the quick start prints
# the scores `sing-ray evaluate --split test` would (a sample of 16 can miss its few near-silent notes).
# Pitch tracking dominates the cost (one pyin call per note and side): on a fresh clone on
# this project's 2-core machine the step took 96 s with all 70 notes, the sheet and the demo,
# against 45 s with 16. The nearest-key baseline tracks a third side (its shifted notes).
HELDOUT_MAX_NOTES = 100
SHEET_FAMILIES, SHEET_PITCHES = 3, 3          # the spectrogram sheet: up to 3 x 3 notes
SHEET_FILE = "spectrograms.png"
DEMO_FILE = "demo_scale.wav"
DEMO_PITCHES = (60, 62, 64, 65, 67, 69, 71, 72)
DEMO_SCALE_NAME = "a C major scale up from C4"
DEMO_VELOCITY = 127                           # in every scale's velocities
DEMO_NOTE_SECONDS = 0.5
# Fades keep the cut notes from clicking: a short fade-in keeps the attack, a longer
# fade-out stands in for the release the 0.5 s cut removes.
DEMO_FADE_IN_SECONDS = 0.005
DEMO_FADE_OUT_SECONDS = 0.05
DEMO_GAP_SECONDS = 0.25                       # silence between two instruments' scales
# The same scale from the dataset's notes, then from the model, instrument by instrument.
DEMO_COMPARE_FILE = "demo_compare.wav"
ARTIFACT_PATH = "quickstart"                  # where the sheet and the demo go in the MLflow run
METRIC_PREFIX = "heldout."                    # the held-out scores' MLflow names: heldout.<summary key>


@dataclass(frozen=True)
class Scale:
    """How much of everything the quick start makes."""

    programs: tuple[int, ...]
    pitches: tuple[int, ...]
    velocities: tuple[int, ...]
    preset: str
    epochs: tuple[int, int, int] | None      # None: the preset's
    render_pitches: str
    render_velocities: str
    render_instruments: str | None = None   # None: every instrument of the model
    overrides: tuple[str, ...] = ()


SCALES = {
    # The README's quick start: 14 GM programs covering the 11 NSynth families,
    # 13 pitches, 5 velocities (910 notes), the quick preset with its own epochs (at most
    # 15 minutes of training on 2 cores), a full-keyboard library.
    "default": Scale(programs=soundfont.DEFAULT_PROGRAMS, pitches=soundfont.DEFAULT_PITCHES,
                     velocities=soundfont.DEFAULT_VELOCITIES, preset="quick", epochs=None,
                     render_pitches="36:84:4", render_velocities="25,75,127"),
    # The end-to-end test: 4 programs x 6 pitches x 2 velocities, one epoch per phase.
    "smallest": Scale(programs=(0, 24, 40, 73), pitches=(48, 52, 55, 60, 64, 67), velocities=(25, 127),
                      preset="tiny", epochs=(1, 1, 1), render_pitches="48:60:12", render_velocities="127",
                      render_instruments="keyboard_acoustic_000,guitar_acoustic_000"),
}


@dataclass
class Demo:
    """The demo WAV: each instrument of the model playing :data:`DEMO_PITCHES` in turn.

    Attributes:
        path: the WAV file.
        instruments: in the order they play; each starts ``seconds_per_instrument`` after the last.
        pitches: the scale played; unheard: those of its pitches the model never trained on.
        rms_db: the level of the whole file in dBFS (gaps included).
        seconds: its length.
    """

    path: Path
    instruments: list[str]
    pitches: list[int]
    unheard: list[int]
    rms_db: float
    seconds: float
    seconds_per_instrument: float


@dataclass
class CompareDemo:
    """The compare demo WAV: per instrument, the scale from the dataset's notes, then from the model.

    Attributes:
        path: the WAV file.
        instruments: in the order they play; each takes ``seconds_per_instrument`` (both halves).
        pitches: the scale played.
        sources: per instrument, what each pitch of its dataset half is: ``real (<split>)``,
            ``nearest key <pitch> (+N)`` (a training note resampled N semitones, where the dataset
            does not hold the note) or ``none`` (silence: neither).
        num_real, num_nearest, num_none: those counts over all instruments.
        nearest_pitches: the scale's pitches that some instrument played from a nearest key.
        rms_db_dataset, rms_db_model: the level of each half's notes in dBFS (gaps left out).
        seconds: the file's length.
    """

    path: Path
    instruments: list[str]
    pitches: list[int]
    sources: dict[str, list[str]]
    num_real: int
    num_nearest: int
    num_none: int
    nearest_pitches: list[int]
    rms_db_dataset: float
    rms_db_model: float
    seconds: float
    seconds_per_instrument: float

    def describe(self) -> str:
        nearest = f" (pitches {', '.join(map(str, self.nearest_pitches))})" if self.nearest_pitches else ""
        none = f", {self.num_none} silent (neither)" if self.num_none else ""
        return (f"{self.path}, {len(self.instruments)} instruments, each playing {DEMO_SCALE_NAME} first from the "
                f"dataset's notes, then from the model, {self.seconds:.1f} s; dataset notes: {self.num_real} real, "
                f"{self.num_nearest} the nearest training key resampled{nearest}{none}; "
                f"dataset half {self.rms_db_dataset:.1f} dBFS RMS, model half {self.rms_db_model:.1f}")


@dataclass
class Showcase:
    """What the quick start's last stage made.

    Attributes:
        scores: the held-out test notes' overall summary (:func:`evaluate.summarize_group`),
            None when the test split is empty.
        split_size: notes in the test split (the scores cover ``scores["num_notes"]`` of them).
        sheet: the spectrogram sheet (None without scored notes); demo: the demo WAV.
        compare_demo: the scale from the dataset's notes then from the model.
        logged: MLflow artifact paths logged to the training run.
    """

    scores: dict | None
    split_size: int | None
    sheet: Path | None
    demo: Demo
    logged: list[str] = field(default_factory=list)
    compare_demo: CompareDemo | None = None


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
    showcase: Showcase | None = None
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
        log.info("quickstart [%d/5] %s", number, name)
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
    epoch_sets = ([f"train.{p}.epochs={n}" for p, n in zip(("autoencoder", "sequence", "finetune"), s.epochs)]
                  if s.epochs else [])
    run_sets = [f"run.run_name={run_name}", f"run.storage_path={workdir / 'runs'}",
                f"run.num_workers={workers}"]
    if tracking_uri:
        run_sets.append(f"run.tracking_uri={tracking_uri}")
    cfg = load_config(s.preset, overrides=[*epoch_sets, *s.overrides, *run_sets, *overrides])
    result = run_pipeline(cfg, str(dataset))
    timings["train"] = time.perf_counter() - t

    t = stage("sample library", 4)
    # The training set beside the library: each note's nearest key and real note for the page's A/B buttons.
    plan = plan_render(result.checkpoint, library, instruments=s.render_instruments or "all",
                       pitches=s.render_pitches, velocities=s.render_velocities, compare_dataset=dataset)
    summary = render_library(plan, workers=workers)
    timings["render"] = time.perf_counter() - t

    t = stage("held-out scores, spectrogram sheet, demo", 5)
    shown = show_model(plan.checkpoint, str(dataset), library, result.run_id, result.tracking_uri,
                       trained_pitches=s.pitches)
    timings["showcase"] = time.perf_counter() - t
    counts = manifest["counts"]
    log.info("quickstart finished in %.0f s (%s); dataset: %d notes listed, %d accepted, %d rejected",
             sum(timings.values()), ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()),
             counts["listed"], counts["accepted"], counts["rejected"])
    return QuickstartResult(workdir=workdir, source=source, dataset=dataset, library=library,
                            run_id=result.run_id, model_uri=result.model_uri,
                            tracking_uri=result.tracking_uri,
                            render=summary, showcase=shown, stage_seconds=timings)


def score_heldout(checkpoint: bytes, dataset: str, *, max_notes: int = HELDOUT_MAX_NOTES):
    """Score the model on the test split's (held-out) notes, with evaluate's code.

    Every note up to ``max_notes``, else a stable sample of that many, each beside the
    nearest-key sampler (the training note of the same instrument and velocity at the nearest
    other pitch, resampled to the note's pitch). Scored in this
    process (:func:`evaluate.score_split_here`): for a few dozen notes an actor
    pool's start costs more than it saves (measured on the 2-core machine while another
    training shared it: 24 notes and the sheet took 171 s with two actors, 101-115 s here;
    40 notes 219-244 s against 127-149 s).

    Args:
        checkpoint: the SING checkpoint's bytes.
        dataset: the ingested dataset.
        max_notes: at most this many notes.
    Returns:
        ``(notes, overall, split_size, audio)``: per-note columns, their overall summary
        (:func:`evaluate.summarize_group`: pitch accuracy beside the real notes', levels,
        near-silent count, spectral L1 beside silence's, timbre medians, and the nearest key's
        figures as ``nk_*``), the split's size, and the notes' ``{"real", "generated"}`` audio;
        ``(None, None, None, None)`` when the test split is empty.
    """
    from .evaluate import score_split_here, summarize_group

    try:
        notes, split_size, audio = score_split_here(checkpoint, dataset, "test", max_notes=max_notes,
                                                    nearest_key=True)
    except UserError as err:
        log.warning("no held-out scores: %s", err)
        return None, None, None, None
    return notes, summarize_group(notes), split_size, audio


def fade(wav: np.ndarray, fade_in: int, fade_out: int) -> np.ndarray:
    """``wav`` (T,) with raised-cosine fades of ``fade_in`` and ``fade_out`` samples at its ends."""
    out = np.array(wav, dtype=np.float32)

    def ramp(n: int) -> np.ndarray:
        return (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)

    n_in, n_out = min(fade_in, len(out)), min(fade_out, len(out))
    if n_in > 0:
        out[:n_in] *= ramp(n_in)
    if n_out > 0:
        out[len(out) - n_out:] *= ramp(n_out)[::-1]
    return out


def play_phrase(notes: np.ndarray, note_seconds: float = DEMO_NOTE_SECONDS) -> np.ndarray:
    """Notes one after another: the first ``note_seconds`` of each, faded in and out.

    Args:
        notes: (N, T) waveforms.
    Returns:
        (N * round(note_seconds * 16 kHz),) float32.
    """
    from .nsynth import SAMPLE_RATE

    keep = int(round(note_seconds * SAMPLE_RATE))
    fade_in, fade_out = int(DEMO_FADE_IN_SECONDS * SAMPLE_RATE), int(DEMO_FADE_OUT_SECONDS * SAMPLE_RATE)
    parts = [fade(np.pad(note[:keep], (0, max(0, keep - len(note)))), fade_in, fade_out) for note in notes]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _gap(gap_seconds: float) -> np.ndarray:
    from .nsynth import SAMPLE_RATE

    return np.zeros(int(round(gap_seconds * SAMPLE_RATE)), dtype=np.float32)


def synthesize_scale(generator, instruments: Sequence[str], pitches: Sequence[int] = DEMO_PITCHES,
                     velocity: int = DEMO_VELOCITY, note_seconds: float = DEMO_NOTE_SECONDS,
                     gap_seconds: float = DEMO_GAP_SECONDS) -> np.ndarray:
    """Each instrument playing ``pitches`` in turn: the first ``note_seconds`` of each note, faded.

    Args:
        generator: a :class:`~sing_ray.generate.Generator`.
        instruments: names in its vocabulary, played one after another.
        pitches: the scale; velocity: one NSynth velocity for every note.
        note_seconds: what is kept of each 4 s note; gap_seconds: silence after each instrument.
    Returns:
        (T,) float32 at 16 kHz, ``len(instruments) * (len(pitches) * note + gap)`` samples.
    """
    parts = []
    for name in instruments:
        notes = generator.generate([name] * len(pitches), list(pitches), [velocity] * len(pitches))
        parts += [play_phrase(notes, note_seconds), _gap(gap_seconds)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def dataset_scale_notes(dataset: str, instruments: Sequence[str], pitches: Sequence[int] = DEMO_PITCHES,
                        velocity: int = DEMO_VELOCITY) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The dataset's own notes for each instrument's scale, or the nearest key's where it has none.

    A note the dataset holds (any split) is played as recorded; one it does not is what a
    sampler holding the training notes plays: the training note of the same instrument and
    velocity at the nearest other pitch, resampled (:func:`evaluate.load_nearest_keys`).

    Returns:
        ``({note_str: (T,) float32}, {note_str: source})``: the notes found, and what each
        is (``real (<split>)`` or ``nearest key <pitch> (+N)``); notes with neither are absent.
    """
    from .evaluate import fetch_held_notes, load_nearest_keys, shift_nearest_keys
    from .nsynth import NUM_FRAMES, format_note_str

    grid = [(str(i), int(p)) for i in instruments for p in pitches]
    names = [format_note_str(i, p, velocity) for i, p in grid]
    held = fetch_held_notes(dataset, names)
    notes = {n: wav for n, (_, wav) in held.items()}
    sources = {n: f"real ({split})" for n, (split, _) in held.items()}
    missing = [(n, i, p) for n, (i, p) in zip(names, grid) if n not in held]
    if missing:
        targets = {"note_str": np.array([m[0] for m in missing]), "instrument_str": np.array([m[1] for m in missing]),
                   "pitch": np.array([m[2] for m in missing]), "velocity": np.full(len(missing), int(velocity))}
        keys = load_nearest_keys(dataset, targets)
        shifted, semitones = shift_nearest_keys(keys, targets["note_str"], targets["pitch"], NUM_FRAMES)
        for k, (name, _, pitch) in enumerate(missing):
            if np.isfinite(semitones[k]):
                notes[name] = shifted[k]
                sources[name] = f"nearest key {pitch - int(semitones[k])} ({int(semitones[k]):+d})"
    return notes, sources


def compare_scale(generator, instruments: Sequence[str], dataset_notes: Mapping[str, np.ndarray],
                  pitches: Sequence[int] = DEMO_PITCHES, velocity: int = DEMO_VELOCITY,
                  note_seconds: float = DEMO_NOTE_SECONDS,
                  gap_seconds: float = DEMO_GAP_SECONDS) -> tuple[np.ndarray, np.ndarray]:
    """Per instrument, the scale from the dataset's notes, then the same scale from the model.

    Args:
        generator: a :class:`~sing_ray.generate.Generator`.
        instruments: names in its vocabulary, played one after another.
        dataset_notes: ``{note_str: (T,) waveform}`` (:func:`dataset_scale_notes`); a note not
            there is silence in the dataset's half.
        pitches, velocity, note_seconds, gap_seconds: as :func:`synthesize_scale`.
    Returns:
        ``(wav, half)``: (T,) float32 at 16 kHz, ``len(instruments) * 2 * (len(pitches) * note + gap)``
        samples, and (T,) int8: 0 where the dataset's notes play, 1 the model's, -1 the gaps.
    """
    from .nsynth import NUM_FRAMES, format_note_str

    parts, halves = [], []
    gap = _gap(gap_seconds)
    for name in instruments:
        real = np.stack([np.asarray(dataset_notes.get(format_note_str(name, p, velocity), np.zeros(NUM_FRAMES)),
                                    dtype=np.float32) for p in pitches])
        model = generator.generate([name] * len(pitches), list(pitches), [velocity] * len(pitches))
        for k, notes in enumerate((real, model)):
            played = play_phrase(notes, note_seconds)
            parts += [played, gap]
            halves += [np.full(len(played), k, dtype=np.int8), np.full(len(gap), -1, dtype=np.int8)]
    if not parts:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int8)
    return np.concatenate(parts), np.concatenate(halves)


def write_demo(checkpoint: bytes, path: Path, *, trained_pitches: Sequence[int] = (),
               pitches: Sequence[int] = DEMO_PITCHES, velocity: int = DEMO_VELOCITY) -> Demo:
    """Write the demo WAV (16-bit, 16 kHz): every instrument of the model plays the scale.

    Args:
        checkpoint: the SING checkpoint's bytes.
        path: the WAV to write (a temporary name, then renamed).
        trained_pitches: the pitches the model trained on; the scale's others are reported as unheard
            (SING's pitch table has a row per MIDI pitch: the rows of unheard pitches are untrained).
    Returns:
        the :class:`Demo`.
    """
    from .generate import Generator

    generator = Generator.from_checkpoint(checkpoint)
    instruments = list(generator.instruments)
    wav = synthesize_scale(generator, instruments, pitches, velocity)
    path, stats = _write_wav(wav, path)
    heard = set(int(p) for p in trained_pitches)
    return Demo(path=path, instruments=instruments, pitches=list(pitches),
                unheard=[int(p) for p in pitches if heard and int(p) not in heard],
                rms_db=_db(stats["rms"]), seconds=stats["seconds"],
                seconds_per_instrument=len(pitches) * DEMO_NOTE_SECONDS + DEMO_GAP_SECONDS)


def _db(rms: float) -> float:
    return 20 * float(np.log10(rms)) if rms > 0 else float("-inf")


def _write_wav(wav: np.ndarray, path: Path) -> tuple[Path, dict]:
    """Write a 16-bit 16 kHz WAV under a temporary name, then rename it. Returns (path, encode_note's stats)."""
    from .render import encode_note

    data, stats = encode_note(wav, "wav")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path, stats


def write_compare_demo(checkpoint: bytes, dataset: str, path: Path, *, pitches: Sequence[int] = DEMO_PITCHES,
                       velocity: int = DEMO_VELOCITY) -> CompareDemo:
    """Write the compare demo WAV: per instrument, the scale from the dataset's notes, then from the model.

    The dataset's half plays its real notes where it holds them (any split) and the nearest
    training key resampled where it does not (:func:`dataset_scale_notes`); the CompareDemo
    says which. Needs Ray initialised (the dataset's notes are read with Ray Data).

    Args:
        checkpoint: the SING checkpoint's bytes.
        dataset: the ingested dataset the model was trained on.
        path: the WAV to write (a temporary name, then renamed).
    Returns:
        the :class:`CompareDemo`.
    """
    from .generate import Generator
    from .nsynth import format_note_str

    generator = Generator.from_checkpoint(checkpoint)
    instruments = list(generator.instruments)
    notes, labels = dataset_scale_notes(dataset, instruments, pitches, velocity)
    wav, half = compare_scale(generator, instruments, notes, pitches, velocity)
    path, stats = _write_wav(wav, path)
    sources = {i: [labels.get(format_note_str(i, p, velocity), "none") for p in pitches] for i in instruments}
    flat = [label for row in sources.values() for label in row]

    def level(k: int) -> float:
        part = wav[half == k].astype(np.float64)
        return _db(float(np.sqrt(np.mean(np.square(part))))) if len(part) else float("-inf")

    return CompareDemo(
        path=path, instruments=instruments, pitches=list(pitches), sources=sources,
        num_real=sum(x.startswith("real") for x in flat), num_nearest=sum(x.startswith("nearest") for x in flat),
        num_none=flat.count("none"),
        nearest_pitches=[int(p) for j, p in enumerate(pitches) if any(row[j].startswith("nearest")
                                                                       for row in sources.values())],
        rms_db_dataset=level(0), rms_db_model=level(1), seconds=stats["seconds"],
        seconds_per_instrument=2 * (len(pitches) * DEMO_NOTE_SECONDS + DEMO_GAP_SECONDS))


def log_showcase(run_id: str, tracking_uri: str, scores: dict | None, files: Sequence[Path],
                 demo: Demo | None = None, compare_demo: CompareDemo | None = None) -> list[str]:
    """Log the held-out scores (``heldout.<key>``), the demos' levels and the files to a finished run.

    The compare demo's levels go in as ``demo_compare.dataset_rms_db`` and ``demo_compare.model_rms_db``,
    its counts as ``demo_compare.num_real``, ``.num_nearest`` and ``.num_none``.

    Returns:
        the artifact paths logged (``quickstart/<file name>``).
    """
    import math

    import mlflow
    from mlflow.entities import Metric

    client = mlflow.MlflowClient(tracking_uri)
    now = int(time.time() * 1000)
    values = {f"{METRIC_PREFIX}{k}": float(v) for k, v in (scores or {}).items()
              if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if demo is not None:
        values["demo.rms_db"] = demo.rms_db
    if compare_demo is not None:
        values.update({"demo_compare.dataset_rms_db": compare_demo.rms_db_dataset,
                       "demo_compare.model_rms_db": compare_demo.rms_db_model,
                       "demo_compare.num_real": compare_demo.num_real,
                       "demo_compare.num_nearest": compare_demo.num_nearest,
                       "demo_compare.num_none": compare_demo.num_none})
    metrics = [Metric(k, v, now, 0) for k, v in values.items() if math.isfinite(v)]
    if metrics:
        client.log_batch(run_id, metrics=metrics)
    logged = []
    for path in files:
        client.log_artifact(run_id, str(path), artifact_path=ARTIFACT_PATH)
        logged.append(f"{ARTIFACT_PATH}/{Path(path).name}")
    return logged


def show_model(checkpoint: bytes, dataset: str, library: Path, run_id: str, tracking_uri: str, *,
               trained_pitches: Sequence[int] = (), max_notes: int = HELDOUT_MAX_NOTES) -> Showcase:
    """Score held-out notes, draw the spectrogram sheet, write the demo WAVs, log all to the run.

    Needs Ray initialised (the held-out notes are read with Ray Data).

    Args:
        checkpoint: the SING checkpoint's bytes.
        dataset: the ingested dataset (its test split holds the held-out (instrument, pitch) pairs).
        library: the folder the sheet (:data:`SHEET_FILE`), the demo (:data:`DEMO_FILE`) and the
            compare demo (:data:`DEMO_COMPARE_FILE`: the scale from the dataset's notes, then the model's) go into.
        run_id, tracking_uri: the MLflow training run they are logged to.
        trained_pitches: the pitches of the training data (the demo reports the others as unheard).
    Returns:
        the :class:`Showcase`.
    """
    from .evaluate import draw_spectrogram_sheet

    library = Path(library)
    notes, scores, split_size, audio = score_heldout(checkpoint, dataset, max_notes=max_notes)
    sheet = None
    if notes is not None:
        sheet = draw_spectrogram_sheet(checkpoint, notes, dataset, "test", library / SHEET_FILE,
                                       SHEET_FAMILIES, SHEET_PITCHES, audio=audio)
        # The whole summary is printed once, at the end (commands/quickstart.py); here one line.
        log.info("held-out test notes: %d of %d scored; spectrogram sheet %s", scores["num_notes"],
                 split_size or scores["num_notes"], sheet)
    demo = write_demo(checkpoint, library / DEMO_FILE, trained_pitches=trained_pitches)
    log.info("demo: %s, %d instruments x %d notes, %.1f s, %.1f dBFS RMS%s", demo.path, len(demo.instruments),
             len(demo.pitches), demo.seconds, demo.rms_db,
             f"; pitches {', '.join(map(str, demo.unheard))} were not in the training data" if demo.unheard else "")
    compare = write_compare_demo(checkpoint, dataset, library / DEMO_COMPARE_FILE)
    log.info("demo compare: %s", compare.describe())
    files = [p for p in (sheet, demo.path, compare.path) if p is not None]
    logged = log_showcase(run_id, tracking_uri, scores, files, demo, compare)
    return Showcase(scores=scores, split_size=split_size, sheet=sheet, demo=demo, logged=logged,
                    compare_demo=compare)
