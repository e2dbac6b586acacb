"""Rendering over many SoundFonts, here or on Ray actors: reference fingerprints, WAV files or PCM for the driver.

Work comes in chunks of one SoundFont each (:class:`Chunk`); a worker keeps the
last SoundFont it loaded, and chunks go out in file order, so each worker loads
each file about once. Three kinds of chunk:

- ``fingerprint``: items ``(index, bank, program, pitches)``; each result
  ``(index, fingerprint (notes, D) float32, loudest RMS in dBFS)``;
- ``wav``: items ``(index, bank, program, pitch, velocity, note_str)``; a
  non-silent note is written to ``<out>/audio/<note_str>.wav`` by the worker
  itself (on the driver's node); each result ``(index, written, rms, peak)``;
- ``pcm``: the same items; each result ``(index, int16 (64000,) or None when
  silent, rms, peak)``, for a writer in the driver (the Parquet mode).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..nsynth_io import write_note_wav
from .fingerprint import REFERENCE_VELOCITY, note_fingerprint
from .fluid import DEFAULT_GAIN, NoteRenderer
from .notes import SILENCE_DBFS, level_dbfs, to_pcm16, wav_path

log = logging.getLogger(__name__)

KINDS = ("fingerprint", "wav", "pcm")


@dataclass(frozen=True)
class Chunk:
    """A unit of work: one kind, one SoundFont, a few items (see the module docstring)."""

    kind: str
    sf2: str
    items: tuple


class ChunkRunner:
    """Renders chunks with one synthesizer, reloaded only when the SoundFont changes."""

    def __init__(self, out: str | None = None, gain: float = DEFAULT_GAIN, silence_dbfs: float = SILENCE_DBFS):
        self._out = out
        self._gain = gain
        self._silence_dbfs = silence_dbfs
        self._renderer: NoteRenderer | None = None

    def _renderer_for(self, sf2: str) -> NoteRenderer:
        if self._renderer is None or str(self._renderer.sf2) != sf2:
            self.close()
            self._renderer = NoteRenderer(sf2, self._gain)
        return self._renderer

    def run(self, chunk: Chunk) -> list[tuple]:
        """Render one chunk; one result per item, in order."""
        if chunk.kind not in KINDS:
            raise ValueError(f"unknown chunk kind {chunk.kind!r}: expected one of {KINDS}")
        renderer = self._renderer_for(chunk.sf2)
        results = []
        if chunk.kind == "fingerprint":
            for index, bank, program, pitches in chunk.items:
                notes = [renderer.render(program, p, REFERENCE_VELOCITY, bank=bank) for p in pitches]
                loudest = max(level_dbfs(a)[0] for a in notes)
                results.append((index, np.stack([note_fingerprint(a) for a in notes]), loudest))
            return results
        for index, bank, program, pitch, velocity, note_str in chunk.items:
            audio = renderer.render(program, pitch, velocity, bank=bank)
            rms, peak = level_dbfs(audio)
            sounding = rms >= self._silence_dbfs
            if chunk.kind == "wav":
                if sounding:
                    write_note_wav(wav_path(self._out, note_str), to_pcm16(audio))
                results.append((index, sounding, rms, peak))
            else:
                results.append((index, to_pcm16(audio) if sounding else None, rms, peak))
        return results

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def make_chunks(kind: str, by_sf2: dict[str, list[tuple]], chunk_items: int) -> list[Chunk]:
    """Chunks of at most ``chunk_items`` items, one SoundFont each, in the order of ``by_sf2``."""
    return [Chunk(kind, sf2, tuple(items[i:i + chunk_items]))
            for sf2, items in by_sf2.items() for i in range(0, len(items), chunk_items)]


def run_chunks(chunks: Sequence[Chunk], on_result: Callable[[Chunk, list[tuple]], None], num_workers: int = 0,
               out: str | None = None, gain: float = DEFAULT_GAIN, silence_dbfs: float = SILENCE_DBFS) -> None:
    """Run every chunk and hand each chunk's results to ``on_result`` in the driver as they come.

    Args:
        chunks: the work, in the order it should start.
        on_result: called with (chunk, results) once per chunk, in completion order.
        num_workers: Ray actors (one CPU each, on the driver's node), Ray started or joined
            here when needed; 0 runs here without Ray.
        out: the dataset folder (``wav`` chunks).
        gain: FluidSynth's master gain.
        silence_dbfs: RMS under which a note is silent.
    """
    if not chunks:
        return
    if not num_workers:
        runner = ChunkRunner(out, gain, silence_dbfs)
        try:
            for chunk in chunks:
                on_result(chunk, runner.run(chunk))
        finally:
            runner.close()
        return
    _run_ray(chunks, on_result, num_workers, out, gain, silence_dbfs)


def _run_ray(chunks, on_result, num_workers, out, gain, silence_dbfs) -> None:
    import ray

    from ..runtime import init_ray

    # Started (or joined) only now that there is work: a rerun with nothing left starts no Ray.
    init_ray(num_cpus=int(num_workers))
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # WAV chunks are written by the workers, so they run on the driver's node, where `out` is.
    node_id = ray.get_runtime_context().get_node_id()
    cpus = next((int(n["Resources"].get("CPU", 0)) for n in ray.nodes()
                 if n["NodeID"] == node_id and n["Alive"]), 1)
    if num_workers > cpus:
        log.warning("%d workers asked for, this Ray node has %d CPUs: using %d", num_workers, cpus, max(1, cpus))
        num_workers = max(1, cpus)
    num_workers = min(num_workers, len(chunks))
    worker_cls = ray.remote(num_cpus=1)(ChunkRunner).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False))
    workers = [worker_cls.remote(out, gain, silence_dbfs) for _ in range(num_workers)]
    # Each worker takes the next chunk in file order as it frees up; two in flight each,
    # so a worker never waits for the driver.
    queue = list(reversed(chunks))
    pending: dict = {}
    for worker in workers * 2:
        if queue:
            chunk = queue.pop()
            pending[worker.run.remote(chunk)] = (worker, chunk)
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            worker, chunk = pending.pop(done[0])
            if queue:
                nxt = queue.pop()
                pending[worker.run.remote(nxt)] = (worker, nxt)
            on_result(chunk, ray.get(done[0]))
    finally:
        for worker in workers:
            ray.kill(worker)
