"""The model's output for each scored note, from a checkpoint: SING generates, an Autoencoder reconstructs.

Ray-free (torch): the Ray job's actors (:class:`sing_ray.evaluate.job.NoteScorer`) and scripts call it alike.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..errors import UserError


def build_note_model(source: str | Path | bytes, device: str = "cpu") -> tuple[Callable[..., np.ndarray], dict]:
    """A function that produces each note's model output, from a checkpoint.

    A SING checkpoint generates the note from its symbols; an Autoencoder checkpoint
    (phase 1) reconstructs the real note, which is how the paper's autoencoder rows are scored.

    Args:
        source: a checkpoint path or its bytes.
    Returns:
        ``(fn, info)``: ``fn(instrument_str, pitch, velocity, wav) -> (B, T) float32`` with
        (B,) arrays and ``wav`` (B, T) the real notes; ``info`` holds ``model_class``, ``phase``,
        ``instruments`` (the vocabulary, SING only) and ``config``.
    """
    from ..checkpoint import load_model
    from ..generate import Generator
    from ..models import SING, Autoencoder

    model, ckpt = load_model(source, map_location=device)
    info = {"model_class": type(model).__name__, "phase": ckpt.get("phase"), "config": ckpt.get("config"),
            "instruments": list(ckpt.get("extra", {}).get("instruments") or [])}
    if isinstance(model, SING):
        if not info["instruments"]:
            raise UserError("the SING checkpoint has no instrument vocabulary (extra.instruments)")
        generator = Generator(model, info["instruments"], device=device)

        def fn(instrument_str, pitch, velocity, wav):
            return generator.generate(list(instrument_str), [int(p) for p in pitch], [int(v) for v in velocity])
    elif isinstance(model, Autoencoder):
        model.eval()

        @torch.inference_mode()
        def fn(instrument_str, pitch, velocity, wav):
            x = torch.as_tensor(np.asarray(wav, dtype=np.float32), device=device)
            return model(x, torch.as_tensor(np.asarray(pitch, dtype=np.int64), device=device)).float().cpu().numpy()
    else:
        raise UserError(f"a {type(model).__name__} checkpoint makes no audio: evaluate a SING "
                        "(finetune) or Autoencoder (autoencoder phase) checkpoint")
    return fn, info


def check_vocabulary(model_instruments: Sequence[str], dataset_instruments: Sequence[str]) -> None:
    """UserError when the dataset has instruments the model never learnt."""
    unknown = sorted(set(dataset_instruments) - set(model_instruments))
    if unknown:
        raise UserError(f"the dataset has {len(unknown)} instrument(s) the model does not know "
                        f"(e.g. {', '.join(unknown[:3])}): evaluate on the dataset it was trained on")
