"""An epoch's training notes in an order that is a function of (seed, epoch), streamed from Parquet.

The training loops read their train split here rather than through Ray Data's split of a
dataset: Ray Data's streaming split hands blocks to whichever worker asks first and keeps no
order ("OutputSplitter does not provide any ordering guarantees"), so an epoch cut short could
not be replayed to go on where it stopped. Here every worker computes the whole epoch's plan
from the files' row counts alone (:func:`plan_epoch`), reads only its own share, and a resumed
run skips the batches already trained without reading them.

The plan of epoch ``e`` (seed ``s``, ``W`` workers, ``B`` notes per worker and batch):

1. the units are the files' row groups (ingest writes 128 notes per row group); a source
   with a ``fraction`` < 1 (the sequence phase's interpolated notes) draws exactly
   ``round(fraction * rows)`` of its rows;
2. the units are cut into pieces of at most :data:`PIECE_ROWS` rows, fewer when the split is
   too small to give every worker several (single notes when every source is held in memory,
   ``cache``: nothing is read again, and the workers' shares then differ by one note), and the
   pieces are shuffled and dealt to the workers in turn, so that each worker reads its own
   row groups;
3. each worker takes its pieces in windows of at least ``window_rows`` notes and shuffles the
   notes inside each window (a local shuffle, as Ray Data's ``local_shuffle_buffer_size``);
4. batches of ``B`` follow one another; every worker trains as many as the worker with the
   fewest notes has (DDP steps in lockstep), so up to a piece's notes a worker are left out of
   an epoch, different ones each epoch.

Every random draw comes from ``numpy.random.default_rng([s, e, ...])``: the same seed, epoch,
sources and worker count give the same batches, in the same order, on every machine.

Memory: a worker holds the one or two windows its current batch reaches (each a few row
groups of raw audio, 16 MB per 128 PCM notes) and decodes one batch at a time; the next
window is read in a thread while the current one trains. A source whose decoded size is
under ``train.materialize_mb`` (``cache=True``) keeps its row groups in memory for the phase
instead of reading them again each epoch.
"""
from __future__ import annotations

import logging
import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

log = logging.getLogger("sing_ray.train")

PIECE_ROWS = 128          # ingest's row group: a worker reads whole row groups at scale
MIN_PIECES_PER_WORKER = 8
KEYS = ("note_str", "instrument", "pitch", "velocity")


def describe_source(files: Sequence[str], *, dataset: str | None = None, audio: bool = True,
                    fraction: float = 1.0, cache: bool = False) -> dict:
    """A source of training notes as the loops receive it: its files and their row groups' sizes.

    Args:
        files: Parquet files (paths in ``dataset``'s file system, else local paths).
        dataset: the ingested dataset's folder or URI whose file system opens ``files``; None
            for local files (the sequence phase's embeddings).
        audio: rows hold ``audio`` (decoded to ``wav``), else ``embedding``.
        fraction: the share of its rows each epoch draws (exactly ``round(fraction * rows)``).
        cache: keep the row groups in memory once read (a source under ``train.materialize_mb``).
    Returns:
        a plain dict: ``files``, ``dataset``, ``audio``, ``fraction``, ``cache`` and
        ``row_groups`` (a list per file of each row group's rows), read from the footers only.
    """
    import pyarrow.parquet as pq

    fs = _filesystem(dataset)
    sizes = []
    for path in files:
        with (fs.open_input_file(path) if fs is not None else open(path, "rb")) as handle:
            meta = pq.ParquetFile(handle).metadata
            sizes.append([meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
    return {"files": list(files), "dataset": dataset, "audio": audio, "fraction": float(fraction),
            "cache": bool(cache), "row_groups": sizes}


def _filesystem(dataset: str | None):
    if dataset is None:
        return None
    from ..data.storage import resolve

    return resolve(dataset).fs


def source_rows(source: dict) -> int:
    """The notes a source gives each epoch."""
    total = sum(sum(groups) for groups in source["row_groups"])
    return total if source["fraction"] >= 1 else int(round(source["fraction"] * total))


@dataclass
class EpochPlan:
    """One worker's share of an epoch.

    Attributes:
        steps: batches in the epoch, the same on every worker.
        units: ``(source, file, row group)`` of each window's row groups, by window.
        rows: per window, ``(k, 2)`` int arrays: the unit (an index into that window's
            ``units``) and the row in it, of each note in the order it is trained.
        batch_size: notes per batch on this worker.
    """

    steps: int
    units: list[list[tuple[int, int, int]]]
    rows: list[np.ndarray]
    batch_size: int
    starts: np.ndarray = field(init=False)

    def __post_init__(self):
        # Where each window's notes start in the worker's sequence of notes.
        self.starts = np.cumsum([0] + [len(r) for r in self.rows])

    @property
    def num_notes(self) -> int:
        """The notes this worker trains in the epoch."""
        return min(int(self.starts[-1]), self.steps * self.batch_size)

    def batch_rows(self, step: int) -> list[tuple[int, np.ndarray]]:
        """The notes of batch ``step`` (from 0): ``[(window, rows of that window)]`` in order."""
        lo = step * self.batch_size
        hi = min(lo + self.batch_size, self.num_notes)
        out = []
        first = int(np.searchsorted(self.starts, lo, side="right")) - 1
        for window in range(first, len(self.rows)):
            start = int(self.starts[window])
            if start >= hi:
                break
            a, b = max(lo, start) - start, min(hi, int(self.starts[window + 1])) - start
            if b > a:
                out.append((window, self.rows[window][a:b]))
        return out


def plan_epoch(sources: Sequence[dict], seed: int, epoch: int, rank: int, world_size: int, batch_size: int,
               window_rows: int) -> EpochPlan:
    """This worker's batches of ``epoch`` (see the module docstring), from row counts alone.

    Args:
        sources: :func:`describe_source` dicts.
        seed, epoch: what the order is a function of (with the sources and ``world_size``).
        rank, world_size: this worker's place.
        batch_size: notes per batch on each worker.
        window_rows: notes shuffled together (at least).
    """
    rng = np.random.default_rng([seed, epoch, 0])
    units, chosen = [], []
    for s, source in enumerate(sources):
        sizes = [(f, g, n) for f, groups in enumerate(source["row_groups"]) for g, n in enumerate(groups)]
        total = sum(n for *_, n in sizes)
        picked = None
        if source["fraction"] < 1 and total:
            picked = np.zeros(total, dtype=bool)
            picked[rng.choice(total, size=source_rows(source), replace=False)] = True
        offset = 0
        for f, g, n in sizes:
            rows = np.arange(n) if picked is None else np.flatnonzero(picked[offset:offset + n])
            offset += n
            if len(rows):
                units.append((s, f, g))
                chosen.append(rows)
    total = sum(len(r) for r in chosen)
    if all(source["cache"] for source in sources):
        # Held in memory: no read to keep whole, so notes are dealt one by one and the workers'
        # shares differ by one note at most (pieces of 47 left 8 % of a 760-note split out).
        piece = 1
    else:
        piece = max(1, min(PIECE_ROWS, total // (world_size * MIN_PIECES_PER_WORKER)))
    pieces = [(u, rows[i:i + piece]) for u, rows in enumerate(chosen) for i in range(0, len(rows), piece)]
    order = rng.permutation(len(pieces))
    mine = [pieces[i] for i in order[rank::world_size]]
    counts = [sum(len(pieces[i][1]) for i in order[r::world_size]) for r in range(world_size)]
    steps = min(math.ceil(c / batch_size) for c in counts) if counts else 0
    local = np.random.default_rng([seed, epoch, 1 + rank])
    windows_units, windows_rows = [], []
    current: list = []
    for p in mine + [None]:
        if p is not None:
            current.append(p)
        if current and (p is None or sum(len(r) for _, r in current) >= window_rows):
            names: list[tuple[int, int, int]] = []
            index = {}
            pairs = []
            for u, rows in current:
                if u not in index:
                    index[u] = len(names)
                    names.append(units[u])
                pairs.append(np.stack([np.full(len(rows), index[u]), rows], axis=1))
            rows = np.concatenate(pairs)
            windows_units.append(names)
            windows_rows.append(rows[local.permutation(len(rows))])
            current = []
    return EpochPlan(steps, windows_units, windows_rows, batch_size)


class NoteReader:
    """Reads a worker's planned batches from the sources' Parquet files, a window at a time.

    Args:
        sources: :func:`describe_source` dicts (the loop config's ``train_sources``).
    """

    def __init__(self, sources: Sequence[dict]):
        self.sources = list(sources)
        self._fs = {}
        self._cache: dict[tuple[int, int, int], object] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sing-ray-notes")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _read_unit(self, unit: tuple[int, int, int]):
        import pyarrow.parquet as pq

        if unit in self._cache:
            return self._cache[unit]
        s, f, g = unit
        source = self.sources[s]
        if s not in self._fs:
            self._fs[s] = _filesystem(source["dataset"])
        fs, path = self._fs[s], source["files"][f]
        columns = [*KEYS, "audio" if source["audio"] else "embedding"]
        with (fs.open_input_file(path) if fs is not None else open(path, "rb")) as handle:
            table = pq.ParquetFile(handle).read_row_group(g, columns=columns)
        if source["cache"]:
            self._cache[unit] = table
        return table

    def _read_window(self, plan: EpochPlan, window: int) -> list:
        return [self._read_unit(unit) for unit in plan.units[window]]

    def batches(self, plan: EpochPlan, skip: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """The plan's batches from batch ``skip`` on, as numpy dicts: ``note_str``, ``instrument``,
        ``pitch``, ``velocity`` (B,), and ``wav`` (B, T) float32 or ``embedding`` (B, D, F) float32.

        Windows wholly before batch ``skip`` are never read.
        """
        loaded: dict[int, list] = {}
        pending: dict[int, Future] = {}

        def window_tables(w: int) -> list:
            if w not in loaded:
                loaded[w] = pending.pop(w).result() if w in pending else self._read_window(plan, w)
            return loaded[w]

        for step in range(skip, plan.steps):
            parts = plan.batch_rows(step)
            if not parts:
                break
            tables = {w: window_tables(w) for w, _ in parts}
            last = parts[-1][0]
            if last + 1 < len(plan.units) and last + 1 not in pending and last + 1 not in loaded:
                pending[last + 1] = self._pool.submit(self._read_window, plan, last + 1)
            for w in [w for w in loaded if w < parts[0][0]]:
                del loaded[w]
            yield self._gather([(tables[w], rows) for w, rows in parts])

    @staticmethod
    def _gather(parts) -> dict[str, np.ndarray]:
        """The batch's notes: one ``take`` per row group, decoded, then put in the planned order."""
        import pyarrow as pa

        columns: dict[str, list] = {}
        planned, offset = [], 0
        for tables, rows in parts:
            for unit in np.unique(rows[:, 0]):
                at = np.flatnonzero(rows[:, 0] == unit)
                chunk = tables[int(unit)].take(pa.array(rows[at, 1]))
                for name, values in _numpy_columns(chunk).items():
                    columns.setdefault(name, []).append(values)
                planned.append(at + offset)
            offset += len(rows)
        order = np.argsort(np.concatenate(planned), kind="stable")
        return {name: np.concatenate(values)[order] for name, values in columns.items()}


def _numpy_columns(table) -> dict[str, np.ndarray]:
    out = {k: table.column(k).to_numpy() for k in KEYS}
    if "audio" in table.column_names:
        from ..data.dataset import decode_audio

        out["wav"] = decode_audio(table.column("audio"))
    else:
        out["embedding"] = _tensor_column(table.column("embedding"))
    return out


def _tensor_column(column) -> np.ndarray:
    """A tensor column (the embeddings: Ray Data's tensor type, or a fixed-size list) as one float32 array."""
    import pyarrow as pa

    chunks = []
    for chunk in column.chunks:
        if isinstance(chunk.type, pa.ExtensionType):           # Ray Data's tensors know their shape
            chunks.append(np.asarray(chunk.to_numpy()))
        elif pa.types.is_fixed_size_list(chunk.type):
            chunks.append(chunk.flatten().to_numpy(zero_copy_only=False).reshape(len(chunk), -1))
        else:
            chunks.append(np.stack(chunk.to_numpy(zero_copy_only=False)))
    return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)
