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
    if address:
        log.info("joining the Ray cluster at %s", address)
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True, **kwargs)
        return False
    if num_cpus is None:
        num_cpus = max(os.cpu_count() or 1, MIN_LOCAL_CPUS)
    log.info("starting a local Ray on 127.0.0.1 with %d CPU slots", num_cpus)
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
             _node_ip_address="127.0.0.1", runtime_env=runtime_env,
             configure_logging=True, logging_level=logging.WARNING, **kwargs)
    return True


def setup_logging(verbose: bool = False) -> None:
    """One logging format for the CLI and the pipelines."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("urllib3", "matplotlib", "fsspec", "botocore", "s3fs", "numba", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
