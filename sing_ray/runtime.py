"""Ray start-up shared by the CLI and the pipelines.

Under ``ray job submit`` the job supervisor sets ``RAY_ADDRESS`` and we join
that cluster. Anywhere else we start a private local Ray bound to 127.0.0.1,
never an accidental connection to some other cluster found on the machine.
"""
from __future__ import annotations

import logging
import os

# Ray's CPU count is a scheduling token, not a core. On a 2-core machine a
# 2-actor Ray Data pool (embedding precompute, rendering) would hold every token
# and leave its own read and write tasks waiting forever; a floor of 4 tokens
# lets them run beside the actors, which share the cores as processes do.
MIN_LOCAL_CPUS = 4

log = logging.getLogger(__name__)


def init_ray(num_cpus: int | None = None, **kwargs) -> bool:
    """Connect to (or start) Ray once. Returns True when this call started a local Ray."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    address = os.environ.get("RAY_ADDRESS")
    runtime_env = kwargs.pop("runtime_env", None)
    from . import console

    # Workers' stdout and stderr stay in Ray's log files unless --verbose: the driver
    # shows their progress itself (console.PhaseProgress).
    kwargs.setdefault("log_to_driver", console.forward_worker_output())
    if address:
        log.info("joining the Ray cluster at %s", address)
        ray.init(address=address, runtime_env=runtime_env, configure_logging=console.verbose(), **kwargs)
        console.quiet_libraries()
        return False
    if num_cpus is None:
        num_cpus = max(os.cpu_count() or 1, MIN_LOCAL_CPUS)
    log.info("starting a local Ray on 127.0.0.1 with %d CPU slots", num_cpus)
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
             _node_ip_address="127.0.0.1", runtime_env=runtime_env,
             configure_logging=console.verbose(), logging_level=logging.WARNING, **kwargs)
    console.quiet_libraries()
    return True


def setup_logging(verbose: bool = False, native_to_log: bool = False) -> None:
    """The terminal and log file of every entry point (see :mod:`sing_ray.console`)."""
    from . import console

    console.setup(verbose, native_to_log=native_to_log)


# glibc's malloc: M_TRIM_THRESHOLD (-1) and M_MMAP_THRESHOLD (-3), see mallopt(3).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20   # glibc's ceiling for it on 64-bit
TRIM_THRESHOLD = 512 << 20


def keep_freed_memory() -> bool:
    """Let this process reuse freed tensor memory instead of returning it to the kernel.

    By default glibc serves every allocation above 128 KiB with its own mmap and
    unmaps it on free, raising that threshold only as it sees such blocks freed.
    A training step allocates and frees the same activation tensors every time,
    so a fresh process (every Ray Train worker is one) pays page faults for
    tensors it just freed, step after step: 25 % of a `small` sequence step on
    this project's CPU (docs/training.md). Blocks up to 32 MiB then come from
    the heap and stay mapped (up to 512 MiB kept free before trimming).

    Returns:
        True when applied (glibc), False elsewhere (other C libraries manage
        memory their own way).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
