"""Checkpoints from before the model was built of named parts, read in today's terms.

Until issue 35 a checkpoint's ``kwargs`` chose the model's parts by flags (``conv_synthesis``,
``harmonic_frames``, ``analysis_partials``) and its decoder called the partials head
``amplitudes``. :func:`upgrade_checkpoint` turns such a checkpoint into today's (``frames``,
``heads``, ``decoder.partials.*``), and the decoder renames the old keys of any state dict it
loads (:func:`rename_legacy_decoder_keys`), so that saved and registered models load and play
as before. tests/test_model_parts.py checks it on checkpoints written by the old code.
"""
from __future__ import annotations

from typing import Any, Mapping

from ..config import LEGACY_MODEL_FLAGS, parts_from_flags

# Decoder state keys renamed since, relative to the decoder: old prefix -> new prefix.
LEGACY_DECODER_KEYS = {"amplitudes.": "partials."}
# The models whose kwargs name the decoder's (and encoder's) parts.
MODELS_WITH_PARTS = ("Autoencoder", "SING")


def upgrade_kwargs(class_name: str, kwargs: Mapping[str, Any]) -> dict:
    """A checkpoint's constructor arguments in today's names (unchanged when they already are).

    Raises:
        ValueError: a model no part builds now (an encoder of partials writing learnt frames).
    """
    kwargs = dict(kwargs)
    if class_name not in MODELS_WITH_PARTS or "heads" in kwargs:
        return kwargs
    flags = {name: kwargs.pop(name) for name in LEGACY_MODEL_FLAGS if name in kwargs}
    partials, noise_bands = kwargs.get("partials", 0), kwargs.get("noise_bands", 0)
    frames, heads = parts_from_flags(**flags, partials=partials, noise_bands=noise_bands)
    return {**kwargs, "frames": frames, "heads": heads, "partials": partials, "noise_bands": noise_bands,
            "sub_octaves": kwargs.get("sub_octaves", 0)}


def upgrade_state(state: Mapping[str, Any]) -> dict:
    """A model's state dict with the decoder's old keys renamed (``decoder.amplitudes.*``)."""
    out = {}
    for key, value in state.items():
        for old, new in LEGACY_DECODER_KEYS.items():
            if key.startswith("decoder." + old):
                key = "decoder." + new + key[len("decoder." + old):]
        out[key] = value
    return out


def upgrade_checkpoint(ckpt: Mapping[str, Any]) -> dict:
    """A checkpoint dict in today's terms: its kwargs and its state's keys (a new dict)."""
    out = dict(ckpt)
    out["kwargs"] = upgrade_kwargs(out.get("class", ""), out.get("kwargs") or {})
    if isinstance(out.get("state"), Mapping):
        out["state"] = upgrade_state(out["state"])
    return out


def rename_legacy_decoder_keys(module, state_dict: dict, prefix: str, *args) -> None:
    """A decoder's ``load_state_dict`` pre-hook: rename its old keys in ``state_dict``, in place."""
    for old, new in LEGACY_DECODER_KEYS.items():
        for key in [k for k in state_dict if k.startswith(prefix + old)]:
            state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)
