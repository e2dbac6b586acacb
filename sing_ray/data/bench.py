"""Ingest throughput: sing-ray's Ray Data ingest against a plain single-process loop.

Both sides do the same work with the same helpers (``sing_ray.data.notes``):
parse examples.json and check every entry, list audio/, read and check every
WAV with soundfile, and write the same Parquet shards with pyarrow, by the same
algorithm. sing-ray spreads the shards over Ray tasks; the plain loop does them
one after the other. The bench checks that both wrote byte-identical shards.
"""
from __future__ import annotations

import filecmp
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from .. import nsynth
from ..nsynth_io import write_examples_json, write_note_wav
from .codec import DEFAULT_AUDIO, audio_choice
from .ingest import DEFAULT_ROWS_PER_SHARD, ingest, list_source, plan_shards
from .layout import renumber_shards
from .memory import MemorySampler, PeakMemory, mib
from .notes import audio_relpath, build_note_table, empty_audio, read_and_check, rejects_table, write_table
from .storage import resolve

log = logging.getLogger(__name__)

DEFAULT_NUM_NOTES = 4000
DEFAULT_REPEATS = 3
MEMORY_SAMPLE_SECONDS = 0.25


def make_synthetic_nsynth(folder: str | Path, num_notes: int, seed: int = 0,
                          distinct_instruments: int | None = None) -> Path:
    """Write an NSynth-layout folder of ``num_notes`` valid notes (harmonic tones).

    Instruments cycle through NSynth's families and sources; each takes all 88
    piano pitches at the five velocities, as NSynth's instruments do.

    Args:
        folder: where to write ``examples.json`` and ``audio/``.
        num_notes: how many notes.
        seed: for the tones' phases.
        distinct_instruments: write the WAVs of this many instruments only; each later
            instrument's WAVs are hard links to those of instrument ``index % K`` (same
            pitch and velocity). Every note is still its own file to list, open, read and
            check, but the disk holds K x 440 notes whatever ``num_notes`` is (NSynth's
            305,979 notes are 39 GB as WAVs), and repeated files are read from the page
            cache. None: every note written.

    Returns:
        the folder.
    """
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    t = np.arange(nsynth.NUM_FRAMES, dtype=np.float64) / nsynth.SAMPLE_RATE
    # Held for 3 s, then a release, like NSynth's notes (whose last second decays).
    envelope = np.where(t < 3.0, 1.0, np.exp(-(t - 3.0) * 8.0))
    if distinct_instruments is not None and distinct_instruments < 1:
        raise ValueError(f"distinct_instruments must be positive, got {distinct_instruments}")
    examples, written = {}, {}
    pitches = range(21, 109)
    per_instrument = len(pitches) * len(nsynth.VELOCITIES)
    for index in range((num_notes + per_instrument - 1) // per_instrument):
        family = nsynth.FAMILIES[index % len(nsynth.FAMILIES)]
        source = nsynth.SOURCES[(index // len(nsynth.FAMILIES)) % len(nsynth.SOURCES)]
        instrument = nsynth.instrument_name(family, source, index)
        for pitch in pitches:
            f0 = 440.0 * 2 ** ((pitch - 69) / 12)
            wave = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k
                       for k in (1, 2, 3) if f0 * k < nsynth.SAMPLE_RATE / 2)
            wave = wave * envelope / 1.9
            for velocity in nsynth.VELOCITIES:
                if len(examples) == num_notes:
                    break
                meta = nsynth.example_metadata(instrument, pitch, velocity, note=len(examples),
                                               instrument=index)
                path = folder / audio_relpath(meta["note_str"])
                if distinct_instruments and index >= distinct_instruments:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    os.link(written[(index % distinct_instruments, pitch, velocity)], path)
                else:
                    audio = (wave * (0.2 + 0.6 * velocity / 127) * 32767).astype(np.int16)
                    write_note_wav(path, audio)
                    written[(index, pitch, velocity)] = path
                examples[meta["note_str"]] = meta
    write_examples_json(folder, examples)
    return folder


def plain_ingest(source: str, out: str, rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
                 split_seed: int = nsynth.DEFAULT_SPLIT_SEED, audio: str = DEFAULT_AUDIO) -> dict:
    """The baseline: the same ingest in this process, one note after the other.

    The algorithm is sing-ray's, without Ray: notes placed by their (instrument,
    pitch), ids from the vocabulary of the placed notes, each shard checked and
    written in turn, ids renumbered only if the checks empty an instrument. It
    is the fastest plain loop we know for this work, and needs no more memory
    than a shard.

    Args:
        source: NSynth-layout folder.
        out: a new folder; gets the same ``notes/`` and ``rejects.parquet`` as ``ingest``.
        rows_per_shard: notes per Parquet file.
        split_seed: seed of the split hash.
        audio: the audio column's encoding, as ``ingest``'s (``pcm``, ``zstd``, ``flac``).

    Returns:
        ``{"listed", "accepted", "rejected"}``.
    """
    src, dst = resolve(source), resolve(out)
    encoding, compression = audio_choice(audio)
    listing = list_source(src, split_seed)
    dst.fs.create_dir(dst.join("notes"), recursive=True)
    vocab = listing.instruments
    index = {name: i for i, name in enumerate(vocab)}
    rejects = [(s, src.display(audio_relpath(s)), r) for s, r in listing.rejects]
    written, kept = [], set()
    shards = plan_shards(listing.notes, rows_per_shard)
    buffer = empty_audio(max((len(notes) for *_, notes in shards), default=0))
    for path, _split, notes in shards:
        accepted, samples, bad = read_and_check(src, notes, buffer=buffer)
        rejects += [(r.note_str, src.display(audio_relpath(r.note_str)), r.reason) for r in bad]
        if accepted:
            table = build_note_table(accepted, [index[n.meta["instrument_str"]] for n in accepted], samples,
                                     encoding)
            write_table(table, dst, path, compression)
            written.append(path)
            kept.update(n.meta["instrument_str"] for n in accepted)
    final = nsynth.build_vocabulary(kept)
    if final != vocab:
        renumber_shards(pa.table({"path": written}), dst, final)
    write_table(rejects_table(rejects), dst, "rejects.parquet")
    accepted_total = listing.listed - len(rejects)
    return {"listed": listing.listed, "accepted": accepted_total, "rejected": len(rejects)}


@dataclass
class BenchResult:
    """Figures of one benchmark run (wall clock; notes/s over listed notes).

    Attributes:
        control: an A/A run, the plain loop on both sides (see :func:`run_bench`).
        plain_runs, ray_runs: seconds of each timed ingest, in the order run
            (the two sides alternate). The headline figures are their medians,
            which a busy shared machine disturbs less than a single run. The
            best runs' ratio is printed too: noise only ever adds time, so it is
            the steadier figure where writes into fresh page cache cost a
            varying amount (see :func:`_settle`).
        plain_memory, ray_memory: peak RSS over each side's runs (:mod:`sing_ray.data.memory`):
            the driver (this process) and the Ray workers it started.
    """

    num_notes: int
    rows_per_shard: int
    num_cpus: int
    plain_runs: list[float]
    ray_runs: list[float]
    identical_shards: bool
    control: bool = False
    plain_memory: PeakMemory = field(default_factory=PeakMemory)
    ray_memory: PeakMemory = field(default_factory=PeakMemory)

    @property
    def plain_seconds(self) -> float:
        return statistics.median(self.plain_runs)

    @property
    def ray_seconds(self) -> float:
        return statistics.median(self.ray_runs)

    @property
    def plain_notes_per_second(self) -> float:
        return self.num_notes / self.plain_seconds

    @property
    def ray_notes_per_second(self) -> float:
        return self.num_notes / self.ray_seconds

    @property
    def ratio(self) -> float:
        return self.plain_seconds / self.ray_seconds

    @property
    def best_ratio(self) -> float:
        """Ratio of the two sides' fastest runs."""
        return min(self.plain_runs) / min(self.ray_runs)

    def format(self) -> str:
        runs = len(self.plain_runs)
        other = "plain (B)" if self.control else "sing-ray"
        lines = [
            f"ingest benchmark: {self.num_notes} notes, {self.rows_per_shard} rows per shard, "
            f"Ray with {self.num_cpus} CPU(s), median of {runs} run(s) each",
            f"  plain loop : {self.plain_seconds:7.2f} s  {self.plain_notes_per_second:8.1f} notes/s"
            f"   (runs: {_seconds(self.plain_runs)})",
            f"  {other:<11}: {self.ray_seconds:7.2f} s  {self.ray_notes_per_second:8.1f} notes/s"
            f"   (runs: {_seconds(self.ray_runs)})",
            f"  ratio      : {self.ratio:.2f}x  ({other} notes/s / plain loop notes/s)",
            f"  best runs  : plain loop {min(self.plain_runs):.2f} s, {other} {min(self.ray_runs):.2f} s,"
            f" ratio {self.best_ratio:.2f}x",
            f"  shards identical: {'yes' if self.identical_shards else 'NO'}",
            f"  peak RSS   : plain loop {mib(self.plain_memory.driver)};  {other} driver "
            f"{mib(self.ray_memory.driver)}, largest worker {mib(self.ray_memory.worker)}, "
            f"all {self.ray_memory.num_workers} worker(s) {mib(self.ray_memory.workers_total)}",
        ]
        if self.control:
            lines.append("  control run (A/A): the plain loop on both sides; the ratio's distance from "
                         "1.00 is the machine's noise")
        return "\n".join(lines)


def _seconds(runs: list[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in runs) + " s"


def _same_files(a: Path, b: Path) -> bool:
    names_a = sorted(p.relative_to(a).as_posix() for p in a.rglob("*.parquet"))
    names_b = sorted(p.relative_to(b).as_posix() for p in b.rglob("*.parquet"))
    return names_a == names_b and all(filecmp.cmp(a / n, b / n, shallow=False) for n in names_a)


def start_ray(num_cpus: int | None = None) -> bool:
    """Start (or join) Ray for the bench, with workers as nice as this process.

    Ray starts its worker processes at niceness 15. On a machine that other
    work keeps busy, that alone hands the plain loop (which runs here, at this
    process's niceness) most of the CPU, and the bench would measure scheduling
    priority rather than the ingest. So a local Ray started here gives its
    workers this process's niceness. A cluster that is joined keeps its own.

    Args:
        num_cpus: CPUs of the local Ray (None: all).

    Returns:
        True when this call started a local Ray.
    """
    from ..runtime import init_ray

    os.environ.setdefault("RAY_worker_niceness", str(os.nice(0)))
    return init_ray(num_cpus=num_cpus)


def run_bench(source: str | None = None, num_notes: int = DEFAULT_NUM_NOTES,
              rows_per_shard: int = DEFAULT_ROWS_PER_SHARD, work_dir: str | None = None,
              repeats: int = DEFAULT_REPEATS, keep: bool = False, control: bool = False,
              distinct_instruments: int | None = None, audio: str = DEFAULT_AUDIO) -> BenchResult:
    """Ingest one folder with the plain loop and with sing-ray, alternately, and compare.

    Args:
        source: an NSynth-layout folder; None makes a synthetic one of ``num_notes``.
        num_notes: size of the synthetic folder (ignored with ``source``).
        rows_per_shard: notes per Parquet file, the same for both.
        work_dir: where outputs (and the synthetic source) go; a temporary folder if None.
        repeats: timed ingests per side; the figures are medians.
        keep: keep the outputs of the last runs instead of deleting them.
        control: an A/A run: the plain loop on both sides, timed exactly as the real
            run is. Its ratio should be 1.00; how far it strays is how far the
            machine's noise alone moves the real ratio.
        distinct_instruments: passed to :func:`make_synthetic_nsynth` (hard-linked WAVs).
        audio: the audio column's encoding, the same on both sides.

    Returns:
        the :class:`BenchResult`. Ray is started with :func:`start_ray` if it is not running.
    """
    import ray

    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    work = Path(work_dir or tempfile.mkdtemp(prefix="sing-ray-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if source is None:
            log.info("writing a synthetic NSynth folder of %d notes under %s", num_notes, work)
            source = str(make_synthetic_nsynth(work / "source", num_notes,
                                               distinct_instruments=distinct_instruments))
        listed = len(json.loads((Path(source) / "examples.json").read_text()))
        start_ray()
        num_cpus = int(ray.cluster_resources().get("CPU", 0))
        # Both runs find the WAVs in the page cache: the synthetic folder was just
        # written, and a real one is read once here so the first run is not penalised.
        _warm_page_cache(Path(source))
        # Both sides first ingest a tiny folder, untimed: the first call of each code
        # path pays one-off costs (imports in Ray's worker processes, pyarrow's lazy
        # initialisation in this one) that a long-running job or cluster pays once.
        _warm_up(work / "warm-up", num_cpus)
        runs = {"plain": [], "sing-ray": []}
        peaks = {"plain": PeakMemory(), "sing-ray": PeakMemory()}

        def plain_side(name):
            counts = plain_ingest(source, str(work / name), rows_per_shard, audio=audio)
            return counts["accepted"], counts["rejected"]

        def ray_side(name):
            summary = ingest(source, str(work / name), rows_per_shard=rows_per_shard, progress=False, audio=audio)
            return summary.accepted, summary.rejected

        sides = {"plain": plain_side, "sing-ray": plain_side if control else ray_side}
        results = {}
        for run in range(repeats):
            # ABBA order: whichever side runs second inherits the machine the first
            # left behind (page-cache write-back, freed pages), so neither always does.
            order = ("plain", "sing-ray") if run % 2 == 0 else ("sing-ray", "plain")
            for name in order:
                # Each side removes its own previous output just before it runs, and
                # so starts from the same state (see _settle).
                shutil.rmtree(work / name, ignore_errors=True)
                _settle()
                with MemorySampler(every=MEMORY_SAMPLE_SECONDS) as sampler:
                    start = time.perf_counter()
                    results[name] = sides[name](name)
                    runs[name].append(time.perf_counter() - start)
                peaks[name] = _max_peak(peaks[name], sampler.peak)
            log.info("run %d/%d: plain loop %.2f s, sing-ray %.2f s", run + 1, repeats,
                     runs["plain"][-1], runs["sing-ray"][-1])
        plain_runs, ray_runs = runs["plain"], runs["sing-ray"]
        if results["plain"] != results["sing-ray"]:
            raise RuntimeError("the two ingests disagree (accepted, rejected): "
                               f"plain loop {results['plain']}, sing-ray {results['sing-ray']}")
        return BenchResult(listed, rows_per_shard, num_cpus, plain_runs, ray_runs,
                           _same_files(work / "plain", work / "sing-ray"), control,
                           peaks["plain"], peaks["sing-ray"])
    finally:
        if not keep and work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
        elif not keep:
            for name in ("plain", "sing-ray"):
                shutil.rmtree(work / name, ignore_errors=True)


def _max_peak(a: PeakMemory, b: PeakMemory) -> PeakMemory:
    def top(x, y):
        return y if x is None else x if y is None else max(x, y)
    return PeakMemory(top(a.driver, b.driver), top(a.worker, b.worker),
                      top(a.workers_total, b.workers_total), max(a.num_workers, b.num_workers))


def _warm_up(folder: Path, num_cpus: int) -> None:
    # Enough shards that every Ray worker process runs one.
    num_notes = max(2, 2 * num_cpus)
    make_synthetic_nsynth(folder / "source", num_notes)
    plain_ingest(str(folder / "source"), str(folder / "plain"), rows_per_shard=1)
    ingest(str(folder / "source"), str(folder / "sing-ray"), rows_per_shard=1, progress=False)
    shutil.rmtree(folder, ignore_errors=True)


def _settle() -> None:
    """Flush written files to disk before a timed run (untimed).

    Each ingest writes as many bytes as it reads (a synthetic source of 16,000 notes
    is 2 GB). The kernel writes them back to disk some seconds later, whatever runs
    then: without this, one side's timing would carry the other side's (or the
    synthetic source's) write-back, by the luck of the order.

    What flushing cannot even out: on this project's virtual machine the same
    4,000-note ingest spends 0.3 to 1.8 s in the kernel, nearly all of it copying
    into fresh page-cache pages, whose cost seems to depend on whether the host
    still backs the guest's free memory. Each side deletes its own previous
    output just before its own run, and the runs go in ABBA order, so both
    sides meet the same mix of conditions; ``--control`` measures what is left.
    """
    os.sync()


def _warm_page_cache(folder: Path) -> None:
    for entry in os.scandir(folder / "audio"):
        with open(entry.path, "rb") as f:
            while f.read(1 << 20):
                pass
