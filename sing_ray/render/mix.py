"""Timbre mixes: a weighted mix of instrument embeddings rendered as a new instrument (``--mix``).

A mix is named by :func:`mix_name` (or by the user) and recorded in the
manifest's ``mix`` column as :func:`mix_spec`'s canonical text. Serve and the
MLflow model parse mixes here too.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Mapping

from ..errors import UserError

_NSYNTH_INSTRUMENT = re.compile(r"^(?P<family>[a-z_]+)_(?:acoustic|electronic|synthetic)_\d{3}$")
_MIX_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


def parse_mix(text: str | Mapping[str, float]) -> dict[str, float]:
    """``"guitar_acoustic_010:0.7,flute_acoustic_002:0.3"`` (or a mapping) -> normalised weights.

    Returns:
        ``{instrument: weight}`` with weights summing to 1, in the order given.
    Raises:
        UserError on a malformed spec, a negative weight or a zero sum.
    """
    if isinstance(text, Mapping):
        items = list(text.items())
    else:
        items = []
        for part in (s.strip() for s in str(text).split(",")):
            if not part:
                continue
            name, sep, weight = part.rpartition(":")
            if not sep or not name.strip():
                raise UserError(f"mix: {part!r} is not INSTRUMENT:WEIGHT")
            items.append((name.strip(), weight))
    if not items:
        raise UserError("mix: no INSTRUMENT:WEIGHT entries")
    weights: dict[str, float] = {}
    for name, weight in items:
        try:
            w = float(weight)
        except (TypeError, ValueError):
            raise UserError(f"mix: weight {weight!r} of {name!r} is not a number") from None
        if not math.isfinite(w) or w < 0:
            raise UserError(f"mix: weight of {name!r} must be a finite number >= 0, got {weight!r}")
        weights[str(name)] = weights.get(str(name), 0.0) + w
    total = sum(weights.values())
    if total <= 0:
        raise UserError("mix: the weights sum to 0")
    return {k: v / total for k, v in weights.items()}


def mix_spec(mix: Mapping[str, float]) -> str:
    """The canonical text of a normalised mix: heaviest first, weights to 4 decimals."""
    ordered = sorted(mix.items(), key=lambda kv: (-round(kv[1], 4), kv[0]))
    return ",".join(f"{name}:{weight:.4f}".rstrip("0").rstrip(".") for name, weight in ordered if weight > 0)


def mix_name(mix: Mapping[str, float]) -> str:
    """An NSynth-like name for a timbre mix: ``<families>_mix_synthetic_<NNN>``.

    ``<families>`` are the NSynth families of the components, heaviest first, without
    repeats (a name that is not NSynth's ``<family>_<source>_<NNN>`` counts as its own
    family); ``mix`` keeps the name out of NSynth's vocabulary; ``synthetic`` is the
    source, as a mix was never recorded; ``<NNN>`` is a hash of :func:`mix_spec`, so
    the same mix always gets the same name. ``0.7 guitar_acoustic_010 + 0.3
    flute_acoustic_002`` -> ``guitar_flute_mix_synthetic_NNN``. The result parses with
    :func:`sing_ray.nsynth.parse_note_str` once a pitch and velocity are appended.
    """
    spec = mix_spec(mix)
    families: list[str] = []
    for part in spec.split(","):
        name = part.rpartition(":")[0]
        match = _NSYNTH_INSTRUMENT.match(name)
        family = match["family"] if match else (re.sub(r"[^a-z]+", "_", name.lower()).strip("_") or "x")
        if family not in families:
            families.append(family)
    number = int.from_bytes(hashlib.blake2b(spec.encode(), digest_size=4).digest(), "big") % 1000
    return f"{'_'.join(families)}_mix_synthetic_{number:03d}"


@dataclass(frozen=True)
class Mix:
    """A timbre mix rendered as a new instrument.

    Attributes:
        name: the instrument name it gets in paths, the manifest and the SFZ.
        weights: normalised ``{instrument: weight}``.
    """

    name: str
    weights: dict[str, float]

    @property
    def spec(self) -> str:
        return mix_spec(self.weights)


def parse_mix_arg(text: str) -> Mix:
    """``[NAME=]INSTRUMENT:WEIGHT,...``: a :class:`Mix`, named by :func:`mix_name` unless NAME is given."""
    name, sep, rest = str(text).partition("=")
    if not sep:
        name, rest = "", text
    weights = parse_mix(rest)
    name = name.strip()
    if name and not _MIX_NAME.match(name):
        raise UserError(f"--mix: name {name!r} must be lower-case letters, digits and '_' "
                        "(it becomes a folder and file names)")
    return Mix(name or mix_name(weights), weights)

