"""The render job's Ray Data actor: one :class:`~sing_ray.generate.Generator` per actor, notes to files.

Each actor generates a batch of notes, finds each note's loop and release
(:mod:`sing_ray.library.notes`), encodes it to WAV or FLAC, writes it and its
spectrogram PNG under the library, and hands back only the manifest rows, with
the seconds the batch spent in each stage (:data:`STAGE_COLUMNS`).
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping

import numpy as np

from .. import nsynth
from ..audio import note_stats
from ..data.storage import Location
from .manifest import MANIFEST_SCHEMA, note_path
from .mix import mix_spec

DTYPES = ("float32", "bfloat16")
# Columns beside the manifest's in what an actor hands back: a batch's seconds of synthesis (the
# model) and of encoding and writing (shape, encode, spectrogram, both writes: the wall time of
# the actor's write threads), each shared out evenly over the batch's notes.
STAGE_COLUMNS = ("synth_s", "write_s")


class NoteSynthesizer:
    """Ray Data actor: generates a batch of notes and writes each one under the library.

    Args:
        checkpoint: checkpoint bytes, or an ObjectRef to them (one copy per node via the object store).
        out: where the files go.
        fmt: ``wav`` or ``flac``.
        model: the model reference written to the manifest.
        dtype: ``float32`` or ``bfloat16``.
        device: ``cpu`` or ``cuda``.
        num_threads: torch threads on CPU (the actor's CPU share).
        mixes: ``{instrument name: mix weights}`` of the mixed instruments.
        io_threads: parallel encodes and writes per batch (object-store PUTs are latency-bound).
    """

    def __init__(self, checkpoint, out: Location, fmt: str, model: str, dtype: str = "float32",
                 device: str = "cpu", num_threads: int = 1, mixes: Mapping[str, Mapping[str, float]] | None = None,
                 io_threads: int = 8):
        import ray
        import torch

        from ..generate import Generator

        if device == "cpu":
            # Ray's share of CPUs, but never more threads than the node has cores.
            torch.set_num_threads(max(1, min(int(num_threads), os.cpu_count() or 1)))
        data = ray.get(checkpoint) if isinstance(checkpoint, ray.ObjectRef) else checkpoint
        self.generator = Generator.from_checkpoint(bytes(data), device=device, dtype=getattr(torch, dtype))
        self.out, self.fmt, self.model = out, fmt, model
        self.mixes = {k: dict(v) for k, v in (mixes or {}).items()}
        self.pool = ThreadPoolExecutor(max_workers=io_threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Args: batch with ``instrument``, ``pitch``, ``velocity``.

        Returns: the manifest's columns and :data:`STAGE_COLUMNS`.
        """
        instruments = [str(i) for i in batch["instrument"]]
        pitches = [int(p) for p in batch["pitch"]]
        velocities = [int(v) for v in batch["velocity"]]
        rows = [self.mixes.get(name, name) for name in instruments]
        started = time.perf_counter()
        wavs = self.generator.generate(rows, pitches, velocities)
        synthesized = time.perf_counter()

        def write(i: int) -> dict:
            from ..library import notes, page

            rel = note_path(instruments[i], pitches[i], velocities[i], self.fmt)
            data, pcm, shape = notes.encode(wavs[i], pitches[i], self.fmt)
            # The picture first: a note is complete (and never rendered again) once its audio exists.
            self.out.write_atomic(page.note_png(pcm), page.png_path(rel))
            self.out.write_atomic(data, rel)
            mix = self.mixes.get(instruments[i])
            return {"note_str": nsynth.format_note_str(instruments[i], pitches[i], velocities[i]),
                    "path": rel, "instrument": instruments[i], "pitch": pitches[i],
                    "velocity": velocities[i], **note_stats(pcm, data), "model": self.model,
                    "mix": mix_spec(mix) if mix else "", **shape.row()}

        written = list(self.pool.map(write, range(len(instruments))))
        n = len(written)
        stages = {"synth_s": (synthesized - started) / n, "write_s": (time.perf_counter() - synthesized) / n}
        return {**{name: np.array([r[name] for r in written]) for name in MANIFEST_SCHEMA.names},
                **{name: np.full(n, seconds) for name, seconds in stages.items()}}
