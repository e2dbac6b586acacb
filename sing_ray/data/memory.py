"""Peak resident memory (RSS) of this process and of the Ray workers it started, sampled from /proc.

``getrusage`` sees only this process and its direct children; a local Ray's
workers are grandchildren (the raylet starts them), so a thread walks the
process tree instead. Workers are the processes named ``ray::...``; Ray's own
servers (raylet, GCS, dashboard) are counted apart. Linux only: elsewhere the
figures are None.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class PeakMemory:
    """Peaks over one sampled stretch, in bytes (None where nothing was sampled).

    Attributes:
        driver: this process.
        worker: the largest single Ray worker (``ray::...``).
        workers_total: all workers together, at the moment their sum peaked.
        num_workers: distinct worker processes seen.
    """

    driver: int | None = None
    worker: int | None = None
    workers_total: int | None = None
    num_workers: int = 0


def processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, RSS bytes, command line) of every readable process."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
            with open(f"/proc/{entry.name}/statm", "rb") as fh:
                rss = int(fh.read().split()[1]) * _PAGE
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError, IndexError):
            continue
        # The parent pid is the 2nd field after the command name, which may hold spaces.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out[int(entry.name)] = (ppid, rss, cmd)
    return out


class MemorySampler:
    """Samples peak RSS in a background thread while in its ``with`` block.

    Args:
        every: seconds between samples (a shorter peak may be missed).
        workers: also sample this process's descendants (the Ray workers).
    """

    def __init__(self, every: float = 0.1, workers: bool = True):
        self.every, self.workers = every, workers
        self.peak = PeakMemory()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: set[int] = set()

    def sample(self) -> None:
        """Take one sample now."""
        if not os.path.isdir("/proc"):
            return
        me = os.getpid()
        procs = processes() if self.workers else {}
        if not self.workers:
            try:
                with open("/proc/self/statm", "rb") as fh:
                    procs = {me: (0, int(fh.read().split()[1]) * _PAGE, "")}
            except OSError:
                return
        if me in procs:
            self.peak.driver = max(self.peak.driver or 0, procs[me][1])
        if not self.workers:
            return
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in procs.items():
            children.setdefault(ppid, []).append(pid)
        total, stack = 0, list(children.get(me, []))
        while stack:
            pid = stack.pop()
            stack.extend(children.get(pid, []))
            _, rss, cmd = procs[pid]
            if cmd.startswith("ray::"):
                self._seen.add(pid)
                total += rss
                self.peak.worker = max(self.peak.worker or 0, rss)
        if self._seen:
            self.peak.workers_total = max(self.peak.workers_total or 0, total)
        self.peak.num_workers = len(self._seen)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def __enter__(self) -> "MemorySampler":
        self.sample()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()


def mib(value: int | None) -> str:
    """``123.4 MiB``, or ``n/a``."""
    return "n/a" if value is None else f"{value / 2**20:.1f} MiB"
