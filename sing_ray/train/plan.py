"""What a pipeline run trains on, checked before any worker starts: the config, the dataset, the cluster."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Sequence

from ..config import PHASES, Config, ConfigError
from ..errors import UserError
from .faults import faults_from_env

# The driver's log lines keep the logger they had when this was part of pipeline.py.
log = logging.getLogger("sing_ray.train.pipeline")


@dataclass(frozen=True)
class Plan:
    """What a pipeline run trains, checked (:func:`check_inputs`).

    Attributes:
        cfg: the validated config.
        dataset: the dataset's URI; ``manifest`` its manifest.
        phases: the phases to run, a prefix of ``PHASES``.
        faults: faults to inject (:func:`sing_ray.train.faults.faults_from_env`).
    """

    cfg: Config
    dataset: str
    manifest: dict
    phases: tuple[str, ...]
    faults: list[dict]

    @property
    def instruments(self) -> list[str]:
        """The dataset's instrument vocabulary."""
        return list(self.manifest["instruments"])

    def count(self, split: str) -> int:
        """The notes of ``split`` in the dataset (0 for an empty or missing split)."""
        return int(self.manifest.get("splits", {}).get(split, {}).get("accepted", 0))


def check_inputs(cfg: Config, dataset: str, phases: Sequence[str] = PHASES) -> Plan:
    """Everything that can be checked without Ray: config, phases, dataset, faults.

    Raises:
        ConfigError or UserError (exit status 2) with a message naming the problem.
    """
    from ..data.dataset import load_manifest
    from ..data.storage import resolve

    cfg = cfg.validate()
    phases = tuple(phases)
    if not phases or phases != PHASES[:len(phases)]:
        raise ConfigError(f"phases must be a prefix of {', '.join(PHASES)} (each needs the one before); "
                          f"got {', '.join(phases) or 'none'}")
    if "://" in cfg.run.storage_path:
        raise ConfigError(f"run.storage_path {cfg.run.storage_path!r}: training runs need a local or shared "
                          "file-system path (mounted on every node); object-store URIs are not supported")
    manifest = load_manifest(dataset)
    uri = resolve(dataset).uri
    train = int(manifest.get("splits", {}).get("train", {}).get("accepted", 0))
    if train == 0:
        raise UserError(f"{uri}: the dataset has no notes in its train split; nothing to train on")
    for split in ("valid", "test"):
        if not int(manifest.get("splits", {}).get(split, {}).get("accepted", 0)):
            log.warning("%s: the %s split is empty; its metrics will be missing", uri, split)
    length = int(manifest.get("audio", {}).get("num_frames", cfg.model.wav_length))
    if length != cfg.model.wav_length:
        raise ConfigError(f"model.wav_length ({cfg.model.wav_length}) does not fit the dataset's notes of "
                          f"{length} samples")
    if not manifest.get("instruments"):
        raise UserError(f"{uri}: the manifest lists no instruments")
    return Plan(cfg, uri, manifest, phases, faults_from_env())


def check_resources(cfg: Config) -> None:
    """On a local Ray, fail now if the workers can never be placed (Ray Train would wait forever).

    On a cluster (``RAY_ADDRESS`` set) the autoscaler may add the nodes later, so nothing is checked.
    """
    import ray

    if os.environ.get("RAY_ADDRESS"):
        return
    total = ray.cluster_resources()
    cpus, gpus = total.get("CPU", 0), total.get("GPU", 0)
    needed = cfg.run.num_workers * cfg.run.cpus_per_worker
    if cpus < needed:
        raise ConfigError(f"run.num_workers = {cfg.run.num_workers} x run.cpus_per_worker = "
                          f"{cfg.run.cpus_per_worker} needs {needed} CPUs; this Ray has {cpus:g}")
    if cfg.run.use_gpu and gpus < cfg.run.num_workers:
        raise ConfigError(f"--gpu with {cfg.run.num_workers} worker(s) needs {cfg.run.num_workers} GPUs; "
                          f"this Ray has {gpus:g}")
