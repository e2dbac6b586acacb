"""Self-describing checkpoints: model class, constructor arguments, config, phase, epoch, weights.

A checkpoint is a plain dict of tensors and primitives, so it loads with
``torch.load(path, weights_only=True)``: no pickled module, no code run on load.
It is written under a temporary name and renamed, so a crash mid-write never
leaves a truncated file under the final name. Checkpoints from before the model was built of
named parts load in today's terms (:func:`sing_ray.models.legacy.upgrade_checkpoint`).
"""
from __future__ import annotations

import io
import os
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .errors import UserError
from .models import MODEL_CLASSES, SING, sing_kwargs_from_phases, upgrade_checkpoint

FORMAT = "sing-ray-checkpoint/1"


def make_checkpoint(model: nn.Module, config: Any = None, phase: str | None = None,
                    epoch: int | None = None, optimizer: torch.optim.Optimizer | None = None,
                    extra: Mapping[str, Any] | None = None) -> dict:
    """The checkpoint dict of ``model`` (unwrapped from DDP if needed), on CPU."""
    model = getattr(model, "module", model)
    name = type(model).__name__
    if name not in MODEL_CLASSES:
        raise TypeError(f"{name} is not one of the checkpointable models {sorted(MODEL_CLASSES)}")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ckpt = {
        "format": FORMAT,
        "class": name,
        "kwargs": dict(model.kwargs),
        "config": asdict(config) if is_dataclass(config) else (dict(config) if config else None),
        "phase": phase,
        "epoch": epoch,
        "state": state,
        "extra": dict(extra or {}),
    }
    if optimizer is not None:
        ckpt["optimizer"] = optimizer.state_dict()
    return ckpt


def save_checkpoint(path: str | Path, model: nn.Module, **kwargs) -> Path:
    """Write :func:`make_checkpoint` to ``path`` atomically. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(make_checkpoint(model, **kwargs), tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(source: str | Path | bytes, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint (a path or its bytes) safely; UserError if it is not one of ours."""
    try:
        handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
        ckpt = torch.load(handle, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{source}: no such checkpoint file") from None
    except Exception as err:  # torch raises many types for a corrupt or foreign file
        where = "checkpoint bytes" if isinstance(source, (bytes, bytearray)) else str(source)
        raise UserError(f"{where}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{source}: not a sing-ray checkpoint (no {FORMAT!r} format tag)")
    if ckpt.get("class") not in MODEL_CLASSES:
        raise UserError(f"{source}: unknown model class {ckpt.get('class')!r}")
    try:
        return upgrade_checkpoint(ckpt)
    except ValueError as err:
        raise UserError(f"{source}: {err}") from None


def build_from_checkpoint(ckpt: Mapping, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model a checkpoint describes, weights loaded, in eval mode."""
    model = MODEL_CLASSES[ckpt["class"]](**ckpt["kwargs"])
    model.load_state_dict(ckpt["state"])
    return model.to(map_location).eval()


def load_model(source: str | Path | bytes, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Load a checkpoint and rebuild its model. Returns ``(model, checkpoint)``."""
    ckpt = load_checkpoint(source, map_location)
    return build_from_checkpoint(ckpt, map_location), ckpt


def sing_from_phases(sequence: Mapping | str | Path | bytes, autoencoder: Mapping | str | Path | bytes) -> SING:
    """SING as fine-tuning starts it: phase 2's LSTM before phase 1's decoder.

    The one place SING is assembled from its phases (the finetune phase, ``sing-ray bench
    quality``): built from the two checkpoints' own arguments, so it needs no config, and
    built as :func:`~sing_ray.models.build_sing` builds it (the same random draws before the
    weights are loaded, so that what follows draws the same numbers).

    Args:
        sequence: phase 2's checkpoint (a ``SequenceGenerator``): as :func:`load_checkpoint`
            returns it, or a path or its bytes.
        autoencoder: phase 1's (an ``Autoencoder``), likewise.
    Returns:
        the SING on the CPU, in training mode.
    Raises:
        UserError: a checkpoint of another class, or phases whose frames do not fit.
    """
    seq = sequence if isinstance(sequence, Mapping) else load_checkpoint(sequence)
    ae = autoencoder if isinstance(autoencoder, Mapping) else load_checkpoint(autoencoder)
    for ckpt, want, name in ((seq, "SequenceGenerator", "sequence"), (ae, "Autoencoder", "autoencoder")):
        if ckpt.get("class") != want:
            raise UserError(f"the {name} phase's checkpoint holds a {ckpt.get('class')}, not a {want}")
    seq, ae = upgrade_checkpoint(seq), upgrade_checkpoint(ae)
    try:
        model = SING(**sing_kwargs_from_phases(seq["kwargs"], ae["kwargs"]))
    except ValueError as err:
        raise UserError(f"phases that do not fit together: {err}") from None
    model.sequence.load_state_dict(seq["state"])
    model.decoder.load_state_dict({k[len("decoder."):]: v for k, v in ae["state"].items() if k.startswith("decoder.")})
    return model
