"""The terminal: what a person running any sing-ray command sees, set up in one place.

- sing-ray's own lines: INFO and up (DEBUG with ``--verbose``), timestamped, written so that
  they do not break a progress bar that is showing.
- The internals of the libraries underneath (Ray, Ray Data, Ray Train, Ray Serve, MLflow,
  its database migrations, HTTP clients) go to a log file, not the terminal: their execution
  plans, controller states and deprecation notices bury the lines a person needs. The file is
  ``<run dir>/logs/driver.log`` once a training run knows its folder (:func:`log_to`), until then
  a file under ``$TMPDIR/sing-ray/logs/``; :func:`log_file` says which.
- Ray workers' output stays in Ray's own log files unless ``--verbose`` (:func:`forward_worker_output`,
  read by :func:`sing_ray.runtime.init_ray`); what the workers have to say reaches the terminal
  through the driver: one progress bar per training phase and one summary line per epoch
  (:class:`PhaseProgress`), and their warnings (a silent model), once each.
- Native code writes its own lines straight to file descriptor 2 (Ray's C++ core worker in the
  driver: "core_worker.cc: ... constructor arguments in the object store"), past Python's
  logging. A program's entry point (``native_to_log``) points descriptor 2 at the log file and
  keeps the terminal for ``sys.stderr``, so those lines land in the log with the libraries'.
- Messages the raylet publishes to the driver that are Ray's scheduling notes, not faults
  (``RAY_SCHEDULING_NOTES``), go to the log file; every other one still reaches the terminal.
- ``--verbose`` brings all of it back to the terminal.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

# Loggers whose records go to the log file unless --verbose.
LIBRARY_LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune", "ray.serve", "ray.util", "mlflow", "alembic",
                   "urllib3", "matplotlib", "fsspec", "botocore", "s3fs", "numba", "filelock", "py.warnings",
                   "asyncio", "git", "httpx", "opentelemetry", "PIL")
# What the raylet publishes to every driver that is Ray's own scheduling note, not a fault: on a
# 2-core machine with a 4-slot local Ray, an actor pool beside its read tasks starts more worker
# processes than the raylet expects. Other raylet messages (a worker killed for memory) are news.
RAY_SCHEDULING_NOTES = ("PYTHON worker processes have been started on node",)
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATEFMT = "%H:%M:%S"

_state = {"verbose": False, "file": None, "handler": None, "progress": True, "native_fd": False}


class _TqdmHandler(logging.StreamHandler):
    """A terminal handler that writes above a showing tqdm bar instead of through it."""

    def emit(self, record):
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging must not raise
            self.handleError(record)


def setup(verbose: bool = False, native_to_log: bool = False) -> None:
    """Configure the terminal and the log file for this process (every entry point calls it).

    Args:
        verbose: everything on the terminal (``--verbose``).
        native_to_log: this process is the program (not a library call inside another one, such
            as a test): native code's writes to file descriptor 2 go to the log file.
    """
    _state["verbose"] = verbose
    if native_to_log and not verbose:
        _native_stderr_to_log()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_sing_ray", False):
            root.removeHandler(handler)
    terminal = _TqdmHandler(sys.stderr)
    terminal._sing_ray = True
    terminal.setFormatter(logging.Formatter(FORMAT, DATEFMT))
    root.addHandler(terminal)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.captureWarnings(True)
    if not verbose:
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        # MLflow would give its logger a terminal handler of its own on import, and draw
        # a bar for every artifact download.
        os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # Nor print two links to stdout whenever a run ends against a tracking server.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    quiet_libraries()


def verbose() -> bool:
    return bool(_state["verbose"])


def set_progress(enabled: bool) -> None:
    """``--no-progress``: summary lines only, no bars."""
    _state["progress"] = bool(enabled)


def progress_bars() -> bool:
    """Whether long work shows tqdm bars: not with ``--no-progress``, and only on a terminal."""
    return bool(_state["progress"]) and sys.stderr.isatty()


def forward_worker_output() -> bool:
    """Whether Ray should copy its workers' stdout and stderr to this terminal (``--verbose``)."""
    return verbose()


def log_file() -> Path:
    """Where the libraries' log records go (created on first use)."""
    if _state["file"] is None:
        folder = Path(tempfile.gettempdir()) / "sing-ray" / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        _state["file"] = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    return Path(_state["file"])


def log_to(path: str | Path) -> Path:
    """Send the libraries' log records to ``path`` from now on (a run's ``logs/driver.log``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _state["file"] = path
    if _state["native_fd"]:
        _point_fd2_at(path)
    old = _state["handler"]
    _state["handler"] = None
    quiet_libraries()
    if old is not None:
        old.close()
    return path


@contextlib.contextmanager
def prints_to_log():
    """Within: what a library prints to stdout or stderr goes to the log file (unless verbose).

    For libraries that print instead of logging (MLflow's "Successfully registered model").
    """
    if verbose():
        yield
        return
    with open(log_file(), "a") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        yield


def _point_fd2_at(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.dup2(fd, 2)
    finally:
        os.close(fd)


def _native_stderr_to_log() -> None:
    """File descriptor 2 becomes the log file; ``sys.stderr`` keeps the terminal (a copy of it)."""
    if _state["native_fd"]:
        return
    try:
        if sys.stderr.fileno() != 2:
            return
    except (AttributeError, OSError, ValueError):   # no real descriptor under sys.stderr
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    sys.stderr = open(terminal, "w", buffering=1, encoding=sys.stderr.encoding or "utf-8",
                      errors="backslashreplace")
    _point_fd2_at(log_file())
    _state["native_fd"] = True


def _route_raylet_notes() -> None:
    """The raylet's scheduling notes go to the log file; its other messages keep their way out."""
    try:
        from ray._private import worker as ray_worker
    except ImportError:
        return
    original = getattr(ray_worker, "print_to_stdstream", None)
    if original is None or getattr(original, "_sing_ray", False):
        return

    def print_to_stdstream(data, *args, **kwargs):
        lines = data.get("lines") or []
        if data.get("pid") == "raylet" and lines and all(any(n in l for n in RAY_SCHEDULING_NOTES) for l in lines):
            logging.getLogger("ray").warning("(raylet) %s", "\n".join(lines))
            return None
        return original(data, *args, **kwargs)

    print_to_stdstream._sing_ray = True
    ray_worker.print_to_stdstream = print_to_stdstream


def _file_handler() -> logging.Handler:
    if _state["handler"] is None:
        handler = logging.FileHandler(log_file())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._sing_ray = True
        _state["handler"] = handler
    return _state["handler"]


def quiet_libraries() -> None:
    """Point the libraries' loggers at the log file instead of the terminal (unless verbose).

    Ray and MLflow give their loggers terminal handlers of their own (and Ray sets them
    again when it starts), so this runs at set-up and again after ``ray.init``.
    """
    if verbose():
        return
    try:
        import ray.data   # Ray configures its loggers on import: import first, then reroute them

        ray.data.DataContext.get_current().enable_progress_bars = False
        _route_raylet_notes()
    except Exception:  # noqa: BLE001 - Ray not installed or not importable here: nothing to quiet
        pass
    handler = _file_handler()
    # Ray clears its loggers' handlers while it starts; a record with no handler would reach
    # Python's last resort, the terminal. Here it reaches the log file instead.
    logging.lastResort = handler
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for h in list(logger.handlers):
            if h is not handler and isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                logger.removeHandler(h)
        if handler not in logger.handlers:
            logger.addHandler(handler)
        logger.propagate = False


class PhaseProgress:
    """The driver's view of a training phase: a tqdm bar and one line per epoch.

    The phase's rank-0 worker writes ``progress_path`` (epoch, step, running loss, notes/s)
    every second and appends each epoch's summary to ``journal_path`` (JSON lines); a thread
    here reads both twice a second. Works wherever the run folder is shared with the workers
    (the training runs' storage must be).
    """

    def __init__(self, phase: str, progress_path: str | Path, journal_path: str | Path, *,
                 show_bar: bool = True, logger: logging.Logger | None = None, every_s: float = 0.5):
        self.phase, self.every_s = phase, every_s
        self.progress_path, self.journal_path = Path(progress_path), Path(journal_path)
        self.log = logger or logging.getLogger("sing_ray.train")
        self.show_bar = show_bar and not verbose()
        self.bar = None
        self.offset = self.journal_path.stat().st_size if self.journal_path.exists() else 0
        self.progress_path.unlink(missing_ok=True)
        self.lines: list[dict] = []
        self.seen_progress = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"progress-{phase}", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        self.poll()
        if self.bar is not None:
            self.bar.close()
        return False

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a half-written file: read it next time
                pass

    def poll(self) -> None:
        """Read the progress file and any new journal lines; update the bar, print the lines."""
        if self.journal_path.exists():
            with open(self.journal_path) as handle:
                handle.seek(self.offset)
                text = handle.read()
            complete = text[:text.rfind("\n") + 1]
            self.offset += len(complete.encode())
            for line in filter(None, complete.split("\n")):
                self._epoch_line(json.loads(line))
        if self.progress_path.exists():
            self.seen_progress = True
            if not self.show_bar:
                return
            try:
                p = json.loads(self.progress_path.read_text())
            except (OSError, ValueError):
                return
            self._bar(p)

    def _bar(self, p: dict) -> None:
        from tqdm import tqdm

        total = int(p["epochs"]) * int(p["steps"])
        done = (int(p["epoch"]) - 1) * int(p["steps"]) + int(p["step"])
        if self.bar is None:
            # initial: a resumed phase's earlier epochs do not count towards the rate and time left.
            self.bar = tqdm(total=total, initial=done, desc=self.phase, unit="step", dynamic_ncols=True,
                            leave=True, file=sys.stderr)
        self.bar.total = total
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)
        valid = next((f" {k} {r[k]:.4g}" for r in reversed(self.lines) for k in
                      ("valid_spectral_l1", "valid_embedding_mse") if isinstance(r.get(k), float)), "")
        self.bar.set_postfix_str(f"epoch {p['epoch']}/{p['epochs']} loss {p['loss']:.5f}{valid} "
                                 f"{p['notes_per_second']:.0f} notes/s", refresh=False)
        self.bar.refresh()

    def _epoch_line(self, record: dict) -> None:
        self.lines.append(record)
        if record.get("event") == "restored":
            if len(self.lines) > 1 or self.seen_progress:
                self.log.warning("%s: the workers restarted (a worker or its node failed) and resumed from the "
                                 "checkpoint of epoch %s", self.phase, record.get("epoch"))
            else:
                self.log.info("%s: resuming after epoch %s of %s (checkpoint restored)", self.phase,
                              record.get("epoch"), record.get("epochs"))
            return
        for message in record.get("warnings") or []:
            self.log.warning("%s", message)
        shown = {k: v for k, v in record.items() if isinstance(v, float) and k != "lr"}
        first = ("train_loss", "valid_spectral_l1", "valid_wav_mse", "valid_embedding_mse", "test_spectral_l1")
        keys = [k for k in first if k in shown] + sorted(k for k in shown if k not in first and k not in (
            "notes_per_second", "epoch_seconds", "train_notes"))
        text = ", ".join(f"{k} {shown[k]:.4g}" for k in keys)
        rate = f", {shown['notes_per_second']:.0f} notes/s" if "notes_per_second" in shown else ""
        if "train_notes" in shown:
            rate = f", {shown['train_notes']:.0f} notes" + (rate and f" at {rate[2:]}")
        if record.get("status") == "finished":
            self.log.info("%s finished after %s epochs: %s", self.phase, record.get("epoch"), text)
        else:
            took = f", {shown['epoch_seconds']:.1f} s" if "epoch_seconds" in shown else ""
            self.log.info("%s epoch %s/%s: %s%s%s", self.phase, record.get("epoch"), record.get("epochs"),
                          text, rate, took)
