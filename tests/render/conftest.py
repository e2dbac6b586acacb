"""Fixtures of the render and serve tests: an untrained tiny SING with a vocabulary (no training needed)."""
from __future__ import annotations

import pytest
import torch

from sing_ray.checkpoint import save_checkpoint
from sing_ray.config import load_config
from sing_ray.models import build_sing

INSTRUMENTS = ["guitar_acoustic_000", "flute_synthetic_001", "keyboard_electronic_002"]


def make_checkpoint(path, preset: str = "tiny", instruments=INSTRUMENTS, seed: int = 0):
    """Save an untrained SING of ``preset`` with ``instruments`` as its vocabulary. Returns the path."""
    cfg = load_config(preset)
    torch.manual_seed(seed)
    model = build_sing(cfg.model, num_instruments=len(instruments))
    return save_checkpoint(path, model, config=cfg, phase="finetune", epoch=0,
                           extra={"instruments": list(instruments)})


@pytest.fixture(scope="session")
def tiny_sing(tmp_path_factory):
    """Path of a tiny SING checkpoint with three instruments."""
    return make_checkpoint(tmp_path_factory.mktemp("model") / "sing.pt")
