"""De-duplication: the presets that sound like an earlier one are dropped, the rest become instruments.

Each candidate preset is played at its three reference notes (:mod:`.fingerprint`)
on the workers of :mod:`.pool`; walking the candidates in the corpus's order
(file name, bank, program), a preset within :data:`~.fingerprint.TOLERANCE_DB`
of one already kept is dropped for it, and a preset whose reference notes are
all silent is dropped as silent. Fingerprints are cached in
``<out>/fingerprints.npz``, keyed by file, size, modification time, bank,
program, reference keys and gain, so a rerun renders only new presets.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .catalog import Candidate
from .fingerprint import NUM_ENV_FRAMES, NUM_MELS, REFERENCE_PITCHES, TOLERANCE_DB, distances, reference_pitches
from .fluid import DEFAULT_GAIN
from .notes import SILENCE_DBFS
from .pool import make_chunks, run_chunks

log = logging.getLogger(__name__)

CACHE_NAME = "fingerprints.npz"
# Presets per fingerprint chunk: three notes each.
CHUNK_PRESETS = 8


@dataclass
class Dedupe:
    """What de-duplication decided, candidate by candidate (keys are :attr:`Candidate.key`)."""

    kept: list[Candidate] = field(default_factory=list)
    duplicate_of: dict[str, tuple[str, float]] = field(default_factory=dict)   # key -> (kept key, distance dB)
    silent: list[Candidate] = field(default_factory=list)
    loudest_dbfs: dict[str, float] = field(default_factory=dict)
    tolerance_db: float = TOLERANCE_DB
    num_rendered: int = 0         # presets whose reference notes this run rendered (the others were cached)
    seconds: float = 0.0          # the whole pass: rendering and comparing


def _cache_key(c: Candidate, gain: float) -> str:
    stat = c.sf2.stat()
    refs = ",".join(map(str, reference_pitches(c.pitches)))
    return f"{c.sf2}|{stat.st_size}|{stat.st_mtime_ns}|{c.bank}|{c.program}|{refs}|{gain:g}"


def _load_cache(path: Path | None) -> dict[str, tuple[np.ndarray, float]]:
    if path is None or not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            return {str(k): (f, float(l)) for k, f, l in zip(data["keys"], data["fingerprints"], data["loudest"])}
    except (OSError, ValueError, KeyError) as err:
        log.warning("fingerprint cache %s unreadable (%s): rendering every preset's reference notes", path, err)
        return {}


def _save_cache(path: Path, cache: dict[str, tuple[np.ndarray, float]]) -> None:
    keys = sorted(cache)
    tmp = path.with_name(path.name + ".tmp.npz")
    empty = np.zeros((0, len(REFERENCE_PITCHES), NUM_MELS + NUM_ENV_FRAMES), np.float32)
    np.savez(tmp, keys=np.array(keys, dtype=str),
             fingerprints=np.stack([cache[k][0] for k in keys]) if keys else empty,
             loudest=np.array([cache[k][1] for k in keys], dtype=np.float64))
    tmp.replace(path)


def fingerprint_candidates(candidates: Sequence[Candidate], num_workers: int = 0, gain: float = DEFAULT_GAIN,
                           cache_path: Path | None = None, progress: bool = True
                           ) -> tuple[list[tuple[np.ndarray, float]], int]:
    """Each candidate's fingerprint and loudest reference note (dBFS), rendering only those not cached.

    Returns:
        ([(fingerprint (3, D), loudest RMS dBFS)] in the candidates' order, how many were rendered).
    """
    from tqdm import tqdm

    cache = _load_cache(cache_path)
    keys = [_cache_key(c, gain) for c in candidates]
    by_sf2: dict[str, list[tuple]] = {}
    for i, (c, key) in enumerate(zip(candidates, keys)):
        if key not in cache:
            by_sf2.setdefault(str(c.sf2), []).append((i, c.bank, c.program, reference_pitches(c.pitches)))
    chunks = make_chunks("fingerprint", by_sf2, CHUNK_PRESETS)
    todo = sum(len(ch.items) for ch in chunks)
    bar = tqdm(total=todo, desc="reference notes", unit="preset", disable=not progress or not todo)

    def on_result(_chunk, results) -> None:
        for index, fp, loudest in results:
            cache[keys[index]] = (fp, loudest)
        bar.update(len(results))

    try:
        run_chunks(chunks, on_result, num_workers=num_workers, gain=gain)
    finally:
        bar.close()
        if cache_path is not None and todo:
            _save_cache(cache_path, cache)
    return [cache[k] for k in keys], todo


def dedupe(candidates: Sequence[Candidate], tolerance_db: float = TOLERANCE_DB, num_workers: int = 0,
           gain: float = DEFAULT_GAIN, cache_path: Path | None = None, silence_dbfs: float = SILENCE_DBFS,
           progress: bool = True) -> Dedupe:
    """Keep each candidate unless it sounds like an earlier kept one (or is silent at its reference notes).

    Args:
        candidates: in the corpus's order (file name, bank, program): earlier ones win.
        tolerance_db: the largest :func:`~.fingerprint.distance` at which two presets are one instrument.
        num_workers: Ray actors rendering reference notes; 0 renders here.
        gain: FluidSynth's master gain.
        cache_path: the fingerprint cache (None: none).
        silence_dbfs: a preset whose loudest reference note lies below this is silent.
        progress: a progress bar while rendering.
    Returns:
        a :class:`Dedupe`.
    """
    start = time.perf_counter()
    prints, rendered = fingerprint_candidates(candidates, num_workers, gain, cache_path, progress)
    result = Dedupe(tolerance_db=float(tolerance_db), num_rendered=rendered)
    # Kept fingerprints per reference keys: only presets played at the same keys compare.
    groups: dict[tuple[int, ...], tuple[list[Candidate], list[np.ndarray]]] = {}
    for c, (fp, loudest) in zip(candidates, prints):
        result.loudest_dbfs[c.key] = loudest
        if loudest < silence_dbfs:
            result.silent.append(c)
            continue
        kept, fps = groups.setdefault(reference_pitches(c.pitches), ([], []))
        if fps:
            d = distances(fp, np.stack(fps))
            best = int(np.argmin(d))
            if d[best] <= tolerance_db:
                result.duplicate_of[c.key] = (kept[best].key, float(d[best]))
                continue
        kept.append(c)
        fps.append(fp)
        result.kept.append(c)
    result.seconds = time.perf_counter() - start
    log.info("de-duplication: %d presets, %d kept, %d duplicates (within %.1f dB), %d silent; "
             "%d rendered, %.1f s", len(candidates), len(result.kept), len(result.duplicate_of),
             tolerance_db, len(result.silent), rendered, result.seconds)
    return result
