"""How much memory and time does a command take, its Ray workers included?

Runs a command and samples, every ``--every`` seconds, the resident memory (RSS, from
``/proc``) of every process in its tree: the command itself (the driver), the Ray workers
it starts (processes named ``ray::...``, one per task or actor) and Ray's own servers
(raylet, GCS, dashboard, ...). ``/usr/bin/time`` sees only the driver and its direct
children's largest; a local Ray's workers are grandchildren of the driver, started by the
raylet, so they are found here by walking the tree. Prints the wall time, the peaks
(driver; the largest single worker; all workers together; the whole tree), and with
``--disk PATH`` the size of PATH after the command. ``--json FILE`` writes the same figures.

    python -m tools.peakmem --disk /tmp/ds -- sing-ray data ingest /tmp/nsynth /tmp/ds

Sampling misses a peak shorter than ``--every``; for the slow growth that a leak or a
whole split held in memory makes, 0.25 s is ample.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from sing_ray.data.memory import processes


def _tree(root: int, procs: dict[int, tuple[int, int, str]]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in procs:
            found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def sample(root: int) -> dict[str, float]:
    """One sample of the tree under ``root``: RSS of the driver, the largest worker, all workers, the tree."""
    procs = processes()
    pids = _tree(root, procs)
    workers = [procs[p][1] for p in pids if procs[p][2].startswith("ray::")]
    return {"driver": procs[root][1] if root in procs else 0,
            "worker_max": max(workers, default=0), "workers": sum(workers),
            "num_workers": len(workers), "tree": sum(procs[p][1] for p in pids)}


def _du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def run(command: list[str], every: float = 0.25) -> dict:
    """Run ``command`` to its end, sampling its tree; returns the peaks (bytes), wall seconds and exit code."""
    start = time.perf_counter()
    proc = subprocess.Popen(command)
    peaks = {"driver": 0, "worker_max": 0, "workers": 0, "num_workers": 0, "tree": 0}
    while proc.poll() is None:
        for key, value in sample(proc.pid).items():
            peaks[key] = max(peaks[key], value)
        time.sleep(every)
    return {"command": command, "returncode": proc.returncode,
            "seconds": round(time.perf_counter() - start, 2), **{f"peak_{k}": v for k, v in peaks.items()}}


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.peakmem", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--every", type=float, default=0.25, metavar="S", help="seconds between samples")
    parser.add_argument("--disk", type=Path, metavar="PATH", help="report the size of PATH after the command")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")
    result = run(command, args.every)
    if args.disk is not None:
        result["disk_bytes"] = _du(args.disk) if args.disk.exists() else 0
    print(f"peakmem: {result['seconds']:.1f} s, exit {result['returncode']}; peak RSS: driver "
          f"{_gib(result['peak_driver'])}, largest worker {_gib(result['peak_worker_max'])}, all "
          f"{result['peak_num_workers']} workers {_gib(result['peak_workers'])}, whole tree "
          f"{_gib(result['peak_tree'])}"
          + (f"; {args.disk}: {_gib(result['disk_bytes'])}" if args.disk is not None else ""), file=sys.stderr)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result["returncode"]


if __name__ == "__main__":
    sys.exit(main())
