"""An epoch's order of notes: a function of (seed, epoch), each note once, read back from Parquet."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sing_ray.train.order import NoteReader, describe_source, plan_epoch


def _embeddings(folder, files=3, rows=50, row_group=16, prefix="note"):
    """Parquet files of fake sequence-phase rows: the embedding of row i holds i everywhere."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, n = [], 0
    for f in range(files):
        ids = np.arange(n, n + rows)
        n += rows
        table = pa.table({"note_str": [f"{prefix}-{i:05d}" for i in ids], "instrument": ids % 3, "pitch": 21 + ids % 88,
                          "velocity": np.full(rows, 100),
                          "embedding": pa.FixedSizeListArray.from_arrays(np.repeat(ids, 4).astype(np.float32), 4)})
        path = folder / f"part-{f}.parquet"
        pq.write_table(table, path, row_group_size=row_group)
        paths.append(str(path))
    return paths


def _notes(plan, reader, skip=0):
    return [str(s) for batch in reader.batches(plan, skip=skip) for s in batch["note_str"]]


@pytest.fixture
def source(tmp_path):
    return describe_source(_embeddings(tmp_path / "e"), audio=False)


def test_the_plan_is_read_from_footers_and_covers_each_note_once(source):
    assert [sum(g) for g in source["row_groups"]] == [50, 50, 50]
    assert source["row_groups"][0] == [16, 16, 16, 2]
    reader = NoteReader([source])
    plan = plan_epoch([source], seed=1, epoch=1, rank=0, world_size=1, batch_size=8, window_rows=32)
    notes = _notes(plan, reader)
    assert plan.steps == 19 and len(notes) == 150 and len(set(notes)) == 150
    assert notes != sorted(notes)                     # shuffled
    batch = next(reader.batches(plan))
    # Every column comes back in the planned order: the embedding of note i holds i.
    assert [int(s.split("-")[1]) for s in batch["note_str"]] == batch["embedding"][:, 0].astype(int).tolist()
    assert batch["embedding"].shape == (8, 4) and batch["embedding"].dtype == np.float32


def test_the_order_is_a_function_of_seed_and_epoch(source):
    reader = NoteReader([source])
    order = lambda seed, epoch: _notes(plan_epoch([source], seed, epoch, 0, 1, 8, 32), reader)
    assert order(1, 1) == order(1, 1)
    assert order(1, 1) != order(1, 2) and order(1, 1) != order(2, 1)


def test_a_resumed_epoch_skips_the_batches_done_without_reading_them(source, monkeypatch):
    plan = plan_epoch([source], seed=3, epoch=2, rank=0, world_size=1, batch_size=8, window_rows=32)
    whole = _notes(plan, NoteReader([source]))
    reader = NoteReader([source])
    read = []
    original = reader._read_window
    monkeypatch.setattr(reader, "_read_window", lambda p, w: read.append(w) or original(p, w))
    assert _notes(plan, reader, skip=12) == whole[12 * 8:]
    first = plan.batch_rows(12)[0][0]
    assert min(read) == first and first > 0         # the windows before batch 12 were never read


def test_workers_share_the_notes_in_equal_steps_of_their_own_row_groups(source):
    plans = [plan_epoch([source], seed=5, epoch=1, rank=r, world_size=2, batch_size=4, window_rows=16)
             for r in range(2)]
    assert plans[0].steps == plans[1].steps
    per_rank = [_notes(p, NoteReader([source])) for p in plans]
    assert not set(per_rank[0]) & set(per_rank[1])
    assert all(len(n) <= plans[0].steps * 4 for n in per_rank)
    # At most one piece (16 rows here) of a worker's notes waits for the next epoch.
    assert 150 - 16 <= sum(map(len, per_rank)) <= 150


def test_a_fraction_draws_that_many_notes_afresh_each_epoch(tmp_path, source):
    extra = describe_source(_embeddings(tmp_path / "x", files=1, rows=40, prefix="between"), audio=False,
                            fraction=0.25)
    reader = NoteReader([source, extra])
    drawn = [_notes(plan_epoch([source, extra], 1, e, 0, 1, 8, 32), reader) for e in (1, 2)]
    between = [{n for n in d if n.startswith("between")} for d in drawn]
    assert [len(d) for d in drawn] == [160, 160] and [len(b) for b in between] == [10, 10]
    assert between[0] != between[1]


def test_a_cached_source_reads_each_row_group_once(source, monkeypatch):
    cached = dict(source, cache=True)
    reader = NoteReader([cached])
    calls = []
    real = pq.ParquetFile

    class Counting(real):
        def read_row_group(self, i, **kwargs):
            calls.append(i)
            return super().read_row_group(i, **kwargs)

    monkeypatch.setattr(pq, "ParquetFile", Counting)
    for epoch in (1, 2):
        _notes(plan_epoch([cached], 1, epoch, 0, 1, 8, 32), reader)
    assert len(calls) == 12                            # 3 files x 4 row groups, once
