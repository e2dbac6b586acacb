"""Fault injection for tests and chaos drills: kill a worker, or poison a loss, once.

Set ``SING_RAY_INJECT_FAULTS`` in the driver's environment (the pipeline reads
it and hands the faults to its workers) to a comma-separated list of
``ACTION:PHASE:EPOCH:STEP[:RANK]``:

- ``kill:autoencoder:2:1:1``: the rank-1 worker SIGKILLs its own process at the
  first step of epoch 2 of the autoencoder phase. Nothing in Python sees it
  coming: it is a real process death, which Ray Train handles by restarting the
  worker group from the latest checkpoint (``FailureConfig(max_failures)``).
- ``nan:sequence:2:3``: the loss of step 3 of epoch 2 becomes NaN on rank 0; the
  guard's all-reduce stops every rank at that step, and the phase ends with
  :class:`~sing_ray.train.phase.NonFiniteLossError`.

Epochs and steps count from 1. RANK defaults to the last worker for ``kill``
(so that rank 0, which logs to MLflow, is not the one killed) and to rank 0 for
``nan``. Each fault fires once per pipeline run: a marker file under
``<run dir>/faults/`` records that it fired, so the restarted workers, and a
re-run of the same pipeline run, go through.

Ray Train's controller picks up reported checkpoints by polling the workers
(every 2 s by default). A ``kill`` therefore first waits until the controller
has registered the previous epoch's checkpoint, so that the drill tests the
restore path and not that polling window.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..config import PHASES, ConfigError

log = logging.getLogger(__name__)

ENV_VAR = "SING_RAY_INJECT_FAULTS"
ACTIONS = ("kill", "nan")
REGISTER_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Fault:
    """One injected fault. ``rank`` None: the default of the action (see module docstring)."""

    action: str
    phase: str
    epoch: int
    step: int
    rank: int | None = None

    @property
    def marker_name(self) -> str:
        return f"{self.action}-{self.phase}-e{self.epoch}-s{self.step}.fired"

    def applies(self, phase: str, epoch: int, step: int, rank: int, world_size: int) -> bool:
        """Whether this fault targets this worker at this step (epoch and step from 1)."""
        if (self.phase, self.epoch, self.step) != (phase, epoch, step):
            return False
        if self.rank is not None:
            return rank == self.rank
        return rank == (world_size - 1 if self.action == "kill" else 0)


def parse_faults(text: str | None) -> list[Fault]:
    """Parse ``SING_RAY_INJECT_FAULTS``. ConfigError on a malformed entry."""
    faults = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        parts = item.split(":")
        try:
            if len(parts) not in (4, 5) or parts[0] not in ACTIONS or parts[1] not in PHASES:
                raise ValueError
            numbers = [int(p) for p in parts[2:]]
            if numbers[0] < 1 or numbers[1] < 1 or (len(numbers) == 3 and numbers[2] < 0):
                raise ValueError
        except ValueError:
            raise ConfigError(f"{ENV_VAR}: {item!r} is not ACTION:PHASE:EPOCH:STEP[:RANK] with ACTION in "
                              f"{', '.join(ACTIONS)}, PHASE in {', '.join(PHASES)}, EPOCH and STEP >= 1") from None
        faults.append(Fault(parts[0], parts[1], numbers[0], numbers[1], numbers[2] if len(numbers) == 3 else None))
    return faults


def faults_from_env() -> list[dict]:
    """The faults of ``SING_RAY_INJECT_FAULTS`` as plain dicts (what travels to the workers)."""
    return [asdict(f) for f in parse_faults(os.environ.get(ENV_VAR))]


class FaultInjector:
    """Fires the faults meant for one worker of one phase. Cheap when there are none.

    Args:
        faults: dicts from :func:`faults_from_env`.
        phase: the phase this worker trains.
        rank, world_size: this worker's place.
        marker_dir: where fired faults are recorded (``<run dir>/faults``).
        snapshot_path: Ray Train's checkpoint manager snapshot of this phase, polled
            before a kill (see module docstring); None to kill at once.
    """

    def __init__(self, faults: list[dict], phase: str, rank: int, world_size: int, marker_dir: str,
                 snapshot_path: str | None = None):
        self.faults = [Fault(**f) for f in faults if f["phase"] == phase]
        self.phase, self.rank, self.world_size = phase, rank, world_size
        self.marker_dir = Path(marker_dir)
        self.snapshot_path = snapshot_path

    def _claim(self, fault: Fault) -> bool:
        """Create the fault's marker; False when it already fired (in this run or an earlier one)."""
        self.marker_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.marker_dir / fault.marker_name, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(f"pid {os.getpid()} rank {self.rank} at {time.time():.3f}\n")
        return True

    def poison(self, epoch: int, step: int) -> bool:
        """Whether this step's loss must be made NaN (fires once)."""
        for fault in self.faults:
            if fault.action == "nan" and fault.applies(self.phase, epoch, step, self.rank, self.world_size):
                # One rank is enough: the guard's all-reduce stops them all at this step.
                if self._claim(fault):
                    log.warning("fault injection: NaN loss at %s epoch %d step %d (rank %d)",
                                self.phase, epoch, step, self.rank)
                    return True
        return False

    def maybe_kill(self, epoch: int, step: int) -> None:
        """SIGKILL this process if a ``kill`` fault targets this step and has not fired yet."""
        for fault in self.faults:
            if fault.action != "kill" or not fault.applies(self.phase, epoch, step, self.rank, self.world_size):
                continue
            if (self.marker_dir / fault.marker_name).exists():
                continue
            self._wait_for_registered_epoch(epoch - 1)
            if not self._claim(fault):
                continue
            log.warning("fault injection: SIGKILL of worker rank %d (pid %d) at %s epoch %d step %d",
                        self.rank, os.getpid(), self.phase, epoch, step)
            logging.shutdown()
            os.kill(os.getpid(), signal.SIGKILL)

    def _wait_for_registered_epoch(self, epoch: int) -> None:
        """Block until Ray Train's controller has registered the checkpoint of ``epoch`` (from 1)."""
        if epoch < 1 or not self.snapshot_path:
            return
        deadline = time.monotonic() + REGISTER_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                snapshot = json.loads(Path(self.snapshot_path).read_text())
                latest = (snapshot.get("latest_checkpoint_result") or {}).get("metrics") or {}
                if int(latest.get("epoch", 0)) >= epoch:
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        log.warning("fault injection: epoch %d's checkpoint not registered after %.0f s; killing anyway",
                    epoch, REGISTER_TIMEOUT_S)
