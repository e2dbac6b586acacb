"""The notes of a SoundFont build: their NSynth names, their files, and rendering them, here or on Ray actors.

Each note is rendered by a :class:`~.fluid.NoteRenderer` and written to
``<out>/audio/<note_str>.wav`` unless it is silent. Ray workers write the WAVs
themselves, on the driver's node, so audio never crosses the object store.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import nsynth
from ..nsynth_io import write_note_wav
from .fluid import NUM_FRAMES, SAMPLE_RATE, NoteRenderer
from .gm import INSTRUMENT_NAMES

log = logging.getLogger(__name__)

# A note whose RMS over the 4 s lies below this is silence: the key lies
# outside every zone of the preset (FluidR3's Contrabass from C4 up renders
# exact zeros), or what sounds is below one 16-bit step (-90 dBFS) and would
# quantize to near-silence anyway. Audible FluidR3 notes at velocity 25 sit
# around -60 dBFS; only a few extreme pitches of Xylophone and Vibraphone
# fall below the floor.
SILENCE_DBFS = -90.0

# Notes per unit of work sent to a Ray worker: small enough for a smooth
# progress bar, large enough that scheduling costs little next to rendering.
CHUNK_NOTES = 16


@dataclass(frozen=True)
class NoteSpec:
    """One note to render and its NSynth names."""

    program: int
    pitch: int
    velocity: int

    @property
    def instrument_str(self) -> str:
        return INSTRUMENT_NAMES[self.program]

    @property
    def note_str(self) -> str:
        return nsynth.format_note_str(self.instrument_str, self.pitch, self.velocity)

    @property
    def note_id(self) -> int:
        # NSynth's `note` is a unique integer; this one is stable across runs and selections.
        return (self.program * 128 + self.pitch) * 128 + self.velocity

    def metadata(self) -> dict:
        """Its examples.json entry (NSynth's full field set, qualities all 0).

        ``instrument`` is the GM program number: unique per instrument and
        the same in every build from any GM SoundFont.
        """
        return nsynth.example_metadata(self.instrument_str, self.pitch, self.velocity,
                                       note=self.note_id, instrument=self.program)


def plan_notes(programs: Sequence[int], pitches: Sequence[int],
               velocities: Sequence[int]) -> list[NoteSpec]:
    """Every (program, pitch, velocity), in that order."""
    return [NoteSpec(p, k, v) for p in programs for k in pitches for v in velocities]


def wav_path(out: str | os.PathLike, note_str: str) -> Path:
    """``<out>/audio/<note_str>.wav``."""
    return Path(out) / "audio" / f"{note_str}.wav"


def is_complete(path: str | os.PathLike) -> bool:
    """True if ``path`` is a finished note: WAV, mono, 16 kHz, 16-bit PCM, 64000 frames."""
    import soundfile as sf

    path = Path(path)
    try:
        info = sf.info(str(path))
        size = path.stat().st_size
    except (OSError, RuntimeError, sf.LibsndfileError):
        return False
    return (info.format == "WAV" and info.subtype == "PCM_16" and info.channels == 1
            and info.samplerate == SAMPLE_RATE and info.frames == NUM_FRAMES
            and size >= 2 * NUM_FRAMES)


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] to int16 (rounded; beyond full scale clipped)."""
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)


def level_dbfs(audio: np.ndarray) -> tuple[float, float]:
    """(RMS, peak) of float audio in dB relative to full scale (-inf for silence)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    to_db = lambda x: 20 * math.log10(x) if x > 0 else -math.inf  # noqa: E731
    return to_db(rms), to_db(peak)


@dataclass(frozen=True)
class RenderedNote:
    """What rendering one note did: written to disk, or skipped as silent; its levels."""

    index: int
    written: bool
    rms_dbfs: float
    peak_dbfs: float


def render_notes(renderer: NoteRenderer, out: str | os.PathLike,
                 notes: Sequence[tuple[int, NoteSpec]],
                 silence_dbfs: float = SILENCE_DBFS) -> list[RenderedNote]:
    """Render notes and write each non-silent one to ``<out>/audio/<note_str>.wav``.

    Args:
        renderer: a loaded :class:`NoteRenderer`.
        out: the dataset folder.
        notes: (index, spec) pairs; the index is echoed back.
        silence_dbfs: RMS below which a note counts as silent and is not written.
    Returns:
        one :class:`RenderedNote` per input, in order.
    """
    results = []
    for index, spec in notes:
        audio = renderer.render(spec.program, spec.pitch, spec.velocity)
        rms_db, peak_db = level_dbfs(audio)
        written = rms_db >= silence_dbfs
        if written:
            write_note_wav(wav_path(out, spec.note_str), to_pcm16(audio))
        results.append(RenderedNote(index, written, rms_db, peak_db))
    return results


class _RenderWorker:
    """A Ray actor body: loads the SoundFont once, then renders and writes chunks of notes."""

    def __init__(self, sf2: str, out: str, gain: float, silence_dbfs: float):
        self._renderer = NoteRenderer(sf2, gain)
        self._out = out
        self._silence_dbfs = silence_dbfs

    def render(self, notes):
        return render_notes(self._renderer, self._out, notes, self._silence_dbfs)


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def render_local(sf2, out, gain, silence_dbfs, todo, on_chunk, chunk_notes):
    with NoteRenderer(sf2, gain) as renderer:
        for chunk in _chunks(todo, chunk_notes):
            on_chunk(render_notes(renderer, out, chunk, silence_dbfs))


def render_ray(sf2, out, gain, silence_dbfs, todo, on_chunk, num_workers, chunk_notes):
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # Workers write the WAVs themselves (audio never crosses the object store),
    # so they run on the driver's node, where `out` is.
    node_id = ray.get_runtime_context().get_node_id()
    cpus = next((int(n["Resources"].get("CPU", 0)) for n in ray.nodes()
                 if n["NodeID"] == node_id and n["Alive"]), 1)
    if num_workers > cpus:
        # Actors ask for one CPU each: more than the node has would wait forever.
        log.warning("%d workers asked for, this Ray node has %d CPUs: using %d",
                    num_workers, cpus, max(1, cpus))
        num_workers = max(1, cpus)
    chunks = _chunks(todo, chunk_notes)
    num_workers = min(num_workers, len(chunks))
    worker_cls = ray.remote(num_cpus=1)(_RenderWorker).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False))
    workers = [worker_cls.remote(str(sf2), str(out), gain, silence_dbfs)
               for _ in range(num_workers)]
    pending: dict = {}
    # Two chunks in flight per worker: it never waits for the driver to hand it work.
    queue = list(reversed(chunks))
    for worker in workers * 2:
        if queue:
            pending[worker.render.remote(queue.pop())] = worker
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            worker = pending.pop(done[0])
            if queue:
                pending[worker.render.remote(queue.pop())] = worker
            on_chunk(ray.get(done[0]))
    finally:
        for worker in workers:
            ray.kill(worker)
