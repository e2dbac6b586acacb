"""An ingest killed midway is resumed by the same command: nothing lost, nothing doubled."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from conftest import make_nsynth, tone
from sing_ray.data.ingest import ingest
from sing_ray.nsynth_io import write_note_wav

REPO = Path(__file__).resolve().parents[2]


def _release(fifo: Path) -> None:
    """Give any reader still blocked on the FIFO an end of file."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as err:
        assert err.errno in (errno.ENXIO, errno.ENOENT)
        return
    os.close(fd)


def _kill_session(sid: int, timeout: float = 60.0) -> None:
    """SIGKILL every process of session ``sid`` and wait until none is left.

    The ingest's own Ray (raylet, workers) runs in its session; killing the driver's process
    group alone leaves a worker blocked on the FIFO alive for a moment, and released by
    :func:`_release` it would still report on its shard into the staging folder.
    """
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            if int(fields[3]) == sid and fields[0] != "Z":  # the session id; zombies are gone already
                alive.append(int(entry.name))
        if not alive:
            return
        assert time.monotonic() < deadline, f"processes of the killed ingest still alive: {alive}"
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def test_a_killed_ingest_resumes_from_its_staging_folder(tmp_path, ray_local):
    source = tmp_path / "nsynth"
    examples = make_nsynth(source, instruments=("guitar_acoustic_000", "flute_synthetic_001"),
                           pitches=range(40, 60), velocities=(25, 127))
    reference = tmp_path / "reference"
    ingest(str(source), str(reference), rows_per_shard=2, progress=False)

    # The last note's WAV becomes a FIFO: the task that reaches it blocks there, after the
    # shards before it are written, so the kill always lands midway.
    last = max(examples)
    wav = source / "audio" / f"{last}.wav"
    wav.unlink()
    os.mkfifo(wav)
    out = tmp_path / "ds"
    script = ("from sing_ray.data.ingest import ingest; "
              f"ingest({str(source)!r}, {str(out)!r}, rows_per_shard=2, progress=False, num_cpus=1)")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        staged = []
        while time.monotonic() < deadline and proc.poll() is None:
            staged = list(tmp_path.glob(".ds.ingest-*/_reports/*.json"))
            if len(staged) >= 5:
                break
            time.sleep(0.05)
        assert proc.poll() is None and len(staged) >= 5, "the ingest never got midway"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        _kill_session(proc.pid)
        _release(wav)
    assert not out.exists()
    (staging,) = tmp_path.glob(".ds.ingest-*")
    num_planned = len(json.loads((reference / "manifest.json").read_text())["shards"])
    assert 0 < len(list((staging / "_reports").glob("*.json"))) < num_planned

    wav.unlink()
    # make_nsynth seeds each tone by its position in insertion order, not in sorted order.
    write_note_wav(wav, tone(examples[last]["pitch"], examples[last]["velocity"],
                             seed=list(examples).index(last)))
    summary = ingest(str(source), str(out), rows_per_shard=2, progress=False)
    assert summary.reconciles() and summary.accepted == len(examples) and summary.rejected == 0
    assert not list(tmp_path.glob(".ds.ingest-*")) and not (out / "_reports").exists()
    ours = json.loads((out / "manifest.json").read_text())
    theirs = json.loads((reference / "manifest.json").read_text())
    assert {k: v for k, v in ours.items() if k != "source"} == {k: v for k, v in theirs.items() if k != "source"}
    for shard in theirs["shards"]:
        assert (out / shard["path"]).read_bytes() == (reference / shard["path"]).read_bytes()
    names = [n for p in sorted((out / "notes").glob("*.parquet"))
             for n in pq.read_table(p, columns=["note_str"]).column(0).to_pylist()]
    assert sorted(names) == sorted(examples)
