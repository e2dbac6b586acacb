"""SING's parts by name, the rules between them, and the options of before they had names.

Split out of :mod:`sing_ray.config` (which re-exports every name here), below it so that
the models' constructors and the config's validation share one :func:`check_parts`:

- the vocabularies of ``model.frames``, ``model.heads`` and ``model.noise_scale``, and
  :func:`check_parts`, which holds what each choice needs of the others;
- the model's flags of before its parts had names (issue 35: ``model.conv_synthesis``,
  ``model.harmonic_frames``, ``model.analysis_partials``, a head's size adding or removing
  the head), read into today's fields by :func:`model_mapping`, so that old checkpoints'
  configs and the documented ``--set`` overrides keep their meaning;
- the train options removed since (:func:`train_mapping`).

:class:`ConfigError` lives here, at the bottom, so that both modules raise the same class.
"""
from __future__ import annotations

import difflib
import logging
from typing import Any, Mapping, Sequence

log = logging.getLogger("sing_ray.config")

# What the frames can be (model.frames): the encoder that writes them, sing_ray.models.encoders.
FRAMES = ("learnt", "harmonic")
# What the decoder can play (model.heads), in the order it builds and sums them: sing_ray.models.heads.
HEADS = ("transposed_conv", "partials", "noise")
# Where the noise head's bands lie (model.noise_scale).
NOISE_SCALES = ("mel", "pitch")


class ConfigError(ValueError):
    """A configuration that cannot run: unknown key, bad value, dims that do not fit."""



HARMONIC_NEEDS = "harmonic frames (model.frames=harmonic, formerly model.harmonic_frames)"


def check_parts(frames: str, heads: Sequence[str], dimension: int, partials: int = 0, noise_bands: int = 0,
                sub_octaves: int = 0, noise_scale: str = "mel") -> tuple[str, ...]:
    """The rules between the model's parts, in one place: the config's validation and the
    models' constructors (whose arguments have these names) both call it.

    Returns:
        the heads in the order the decoder builds them (:data:`HEADS`).
    Raises:
        ConfigError: naming the ``model.*`` options that do not fit together.
    """
    if frames not in FRAMES:
        raise ConfigError(f"model.frames: {frames!r} is not one of {', '.join(FRAMES)}")
    if isinstance(heads, str):
        raise ConfigError(f"model.heads: expected a list of heads, got the string {heads!r}")
    heads = tuple(heads)
    for name in heads:
        if name not in HEADS:
            close = difflib.get_close_matches(str(name), HEADS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"model.heads: unknown head {name!r}{hint}; known heads: {', '.join(HEADS)}")
    if not heads:
        raise ConfigError(f"model.heads is empty: the decoder would play nothing (choose from {', '.join(HEADS)})")
    if len(set(heads)) != len(heads):
        raise ConfigError(f"model.heads names a head twice: {', '.join(heads)}")
    for name, size in (("partials", partials), ("noise_bands", noise_bands), ("sub_octaves", sub_octaves)):
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ConfigError(f"model.{name} must be >= 0, got {size!r}")
    if "partials" in heads and not partials:
        raise ConfigError("model.heads names partials: set model.partials > 0, the partials it plays")
    if partials and "partials" not in heads:
        raise ConfigError(f"model.partials ({partials}) sizes a partials head that model.heads "
                          f"({', '.join(heads)}) does not name: add partials to model.heads or set model.partials=0")
    if "noise" in heads and noise_bands < 2:
        raise ConfigError(f"model.heads names noise: model.noise_bands must be 2 or more, got {noise_bands}")
    if noise_bands and "noise" not in heads:
        raise ConfigError(f"model.noise_bands ({noise_bands}) sizes a noise head that model.heads "
                          f"({', '.join(heads)}) does not name: add noise to model.heads or set model.noise_bands=0")
    if sub_octaves and "partials" not in heads:
        raise ConfigError(f"model.sub_octaves ({sub_octaves}) places the decoder's partials: "
                          "set model.partials > 0 (and partials in model.heads)")
    if noise_scale not in NOISE_SCALES:
        raise ConfigError(f"model.noise_scale: {noise_scale!r} is not one of {', '.join(NOISE_SCALES)}")
    if noise_scale != "mel" and "noise" in heads and frames != "harmonic":
        raise ConfigError(f"model.noise_scale={noise_scale} places the noise levels that {HARMONIC_NEEDS} "
                          f"hold: it needs model.frames=harmonic (or model.noise_scale=mel)")
    if frames == "harmonic":
        if "transposed_conv" in heads or "partials" not in heads:
            raise ConfigError(f"{HARMONIC_NEEDS} are played by the partials head (and the noise head), "
                              f"without the transposed conv; model.heads is {', '.join(heads)}")
        if dimension != partials + noise_bands:
            raise ConfigError(f"{HARMONIC_NEEDS} are the partials' log magnitudes and the noise levels: "
                              f"model.dimension ({dimension}) must equal model.partials ({partials}) plus "
                              f"model.noise_bands ({noise_bands})")
    return tuple(h for h in HEADS if h in heads)


# The model's flags before its parts had names (issue 35), as old checkpoints' configs and
# documented --set overrides give them, with a value of their type (for --set's parsing).
LEGACY_MODEL_FLAGS = {"conv_synthesis": True, "harmonic_frames": False, "analysis_partials": 0}
# Options removed with no replacement; a stored config's default value for one is dropped.
REMOVED_TRAIN_OPTIONS = {"sequence_loudness": 0.0}
# The size option of each head that has one.
HEAD_SIZES = {"partials": "partials", "noise_bands": "noise"}


def parts_from_flags(conv_synthesis: bool = True, harmonic_frames: bool = False, analysis_partials: int = 0,
                     partials: int = 0, noise_bands: int = 0) -> tuple[str, tuple[str, ...]]:
    """``(frames, heads)`` of a model given by the flags of before issue 35: the transposed conv
    unless ``conv_synthesis`` was false, the partials head where ``partials`` > 0, the noise head
    where ``noise_bands`` > 0; harmonic frames where ``harmonic_frames`` was true.

    Raises:
        ConfigError: ``analysis_partials`` without harmonic frames (:data:`LEARNT_ANALYSIS`).
    """
    if analysis_partials and not harmonic_frames:
        raise ConfigError(f"model.analysis_partials ({analysis_partials}) without harmonic frames: {LEARNT_ANALYSIS}")
    heads = tuple(h for h, on in (("transposed_conv", conv_synthesis), ("partials", partials > 0),
                                  ("noise", noise_bands > 0)) if on)
    return ("harmonic" if harmonic_frames else "learnt"), heads


# Why model.analysis_partials without harmonic frames has no meaning now.
LEARNT_ANALYSIS = ("an encoder that measures partials to write learnt frames was used by no preset and is no "
                   "longer built; the encoder that measures them writes harmonic frames (model.frames=harmonic)")


def model_mapping(data: Mapping[str, Any], base: Mapping[str, Any]) -> dict:
    """A model mapping in today's fields, read on top of ``base`` (the whole model it changes:
    every field of :class:`~sing_ray.config.ModelConfig`).

    A mapping that names ``heads`` is today's and taken as it is. One that does not is read
    as before the parts had names, so that old checkpoints' configs and the documented
    ``--set`` overrides keep their meaning: a head's size adds the head (``partials`` > 0,
    ``noise_bands`` > 0) or removes it (0), ``conv_synthesis`` adds or removes the transposed
    conv, ``harmonic_frames`` and ``analysis_partials`` choose the frames.
    """
    legacy = [k for k in LEGACY_MODEL_FLAGS if k in data]
    if "heads" in data:
        if legacy:
            raise ConfigError(f"model.heads and the older model.{legacy[0]} both given: give model.heads and "
                              "model.frames alone")
        return dict(data)
    if not legacy and not any(k in data for k in HEAD_SIZES):
        return dict(data)
    out = {k: v for k, v in data.items() if k not in LEGACY_MODEL_FLAGS}
    heads = set(base["heads"])
    for size, head in HEAD_SIZES.items():
        if size in data:
            (heads.add if data[size] else heads.discard)(head)
    if "conv_synthesis" in data:
        (heads.add if data["conv_synthesis"] else heads.discard)("transposed_conv")
    frames = out.get("frames", base["frames"])
    if "harmonic_frames" in data:
        frames = "harmonic" if data["harmonic_frames"] else "learnt"
    if "analysis_partials" in data:
        analysis, partials = data["analysis_partials"], out.get("partials", base["partials"])
        if analysis and data.get("harmonic_frames") is False:
            raise ConfigError(f"model.analysis_partials ({analysis}) with model.harmonic_frames=false: "
                              f"{LEARNT_ANALYSIS}")
        if analysis and analysis != partials:
            raise ConfigError(f"model.analysis_partials ({analysis}) must equal model.partials ({partials}): "
                              "harmonic frames measure the partials the decoder plays (set model.partials first)")
        if not analysis and data.get("harmonic_frames"):
            raise ConfigError("model.harmonic_frames=true with model.analysis_partials=0: harmonic frames measure "
                              "model.partials partials")
        frames = "harmonic" if analysis else "learnt"
    out["frames"], out["heads"] = frames, tuple(h for h in HEADS if h in heads)
    return out


def train_mapping(data: Mapping[str, Any], strict: bool = False) -> dict:
    """A train mapping without the options removed since.

    A stored config (an old checkpoint's, a run's) may hold one at any value: it only shaped
    how that model was trained, so it is dropped, with a warning where it was on. ``strict``
    (a ``--set`` override, which asks for it now): ConfigError where it is on.
    """
    for name, default in REMOVED_TRAIN_OPTIONS.items():
        if name in data and data[name] != default:
            if strict:
                raise ConfigError(f"train.{name} ({data[name]!r}) was removed: no preset used it")
            log.warning("train.%s (%r) was removed (no preset used it); this config's value is ignored",
                        name, data[name])
    return {k: v for k, v in data.items() if k not in REMOVED_TRAIN_OPTIONS}
