"""Generating notes from a trained SING: names to indices, batching, timbre mixes. Pure torch."""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from .checkpoint import load_model
from .errors import UserError
from .models import SING, DecoderGemmWeights
from .nsynth import PITCH_RANGE, VELOCITIES, velocity_index


class Generator:
    """A SING model with its instrument vocabulary.

    Args:
        model: a trained :class:`SING` (its weights are treated as frozen).
        instruments: the vocabulary, ``instruments[i]`` the name of dense id ``i``.
        device, dtype: where and in what precision the products run (bfloat16 via autocast).
        fast: prepare the decoder's GEMM weights once (cast to ``dtype``) and reuse them for
            every batch; otherwise every call of the model lays them out anew from its
            parameters (the same path and waveform, a little more work).
    """

    def __init__(self, model: SING, instruments: Sequence[str], device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, fast: bool = True):
        if not isinstance(model, SING):
            raise UserError(f"a {type(model).__name__} checkpoint cannot generate notes: need a SING "
                            "(finetune phase) checkpoint")
        if len(instruments) != model.sequence.num_instruments:
            raise UserError(f"vocabulary has {len(instruments)} instruments, the model {model.sequence.num_instruments}")
        self.model = model.to(device=device).eval()
        self.instruments = list(instruments)
        self.index = {name: i for i, name in enumerate(self.instruments)}
        self.device, self.dtype, self.fast = torch.device(device), dtype, fast
        self._weights: DecoderGemmWeights | None = None

    @classmethod
    def from_checkpoint(cls, path: str | Path | bytes, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32, fast: bool = True) -> "Generator":
        """Load a SING checkpoint (a path or its bytes) with its ``extra.instruments`` vocabulary."""
        model, ckpt = load_model(path, map_location=device)
        instruments = ckpt.get("extra", {}).get("instruments")
        if not instruments:
            where = "checkpoint bytes" if isinstance(path, (bytes, bytearray)) else path
            raise UserError(f"{where}: checkpoint has no instrument vocabulary (extra.instruments)")
        return cls(model, instruments, device, dtype, fast)

    def decoder_weights(self) -> DecoderGemmWeights:
        """The decoder's GEMM weights in this generator's dtype, prepared on first use."""
        if self._weights is None:
            cast = None if self.dtype == torch.float32 else self.dtype
            with torch.inference_mode():
                self._weights = self.model.decoder.gemm_weights(cast)
        return self._weights

    def instrument_id(self, name: str | int) -> int:
        """Dense id of an instrument name (or a valid id); UserError naming close matches."""
        if isinstance(name, (int, np.integer)) and 0 <= int(name) < len(self.instruments):
            return int(name)
        if name in self.index:
            return self.index[name]
        close = difflib.get_close_matches(str(name), self.instruments, n=3, cutoff=0.6)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise UserError(f"unknown instrument {name!r}{hint}")

    def mix_embedding(self, mix: Mapping[str, float]) -> torch.Tensor:
        """A weighted mix of instrument table rows (timbre morphing). Returns (instrument_dim,)."""
        table = self.model.sequence.instrument
        if table is None:
            raise UserError("this model has no instrument table (instrument_dim=0): nothing to mix")
        if not mix:
            raise UserError("an empty mix")
        total = sum(mix.values())
        if total <= 0 or any(w < 0 for w in mix.values()):
            raise UserError(f"mix weights must be >= 0 with a positive sum, got {dict(mix)}")
        ids = torch.tensor([self.instrument_id(n) for n in mix], device=self.device)
        weights = torch.tensor([w / total for w in mix.values()], device=self.device)
        return (table.weight[ids] * weights[:, None]).sum(0)

    @torch.inference_mode()
    def generate(self, instruments: Sequence[str | int], pitches: Sequence[int], velocities: Sequence[int],
                 mix: Mapping[str, float] | None = None) -> np.ndarray:
        """Generate one note per row.

        Args:
            instruments: names or dense ids (ignored where ``mix`` is given); a row may
                also be a ``{instrument: weight}`` mapping, that row's own timbre mix.
            pitches: MIDI pitches 0-127; velocities: NSynth velocities (25, 50, 75, 100, 127).
            mix: ``{instrument: weight}`` to use a mixed timbre for every row.
        Returns:
            (B, wav_length) float32 waveforms.
        """
        for p in pitches:
            if not PITCH_RANGE[0] <= int(p) <= PITCH_RANGE[1]:
                raise UserError(f"pitch {p} outside {PITCH_RANGE[0]}-{PITCH_RANGE[1]}")
        for v in velocities:
            if int(v) not in VELOCITIES:
                raise UserError(f"velocity {v} is not one of {', '.join(map(str, VELOCITIES))}")
        n = len(pitches)
        pitch = torch.tensor([int(p) for p in pitches], device=self.device)
        velocity = torch.tensor([velocity_index(v) for v in velocities], device=self.device)
        if mix:
            emb = self.mix_embedding(mix).expand(n, -1)
            instrument = torch.zeros(n, dtype=torch.long, device=self.device)
        elif any(isinstance(i, Mapping) for i in instruments):
            # Rows of plain instruments and rows of mixes in one batch: every row gets its
            # embedding explicitly (a plain row's is its table row, so nothing changes for it).
            table = self.model.sequence.instrument
            if table is None:
                raise UserError("this model has no instrument table (instrument_dim=0): nothing to mix")
            emb = torch.stack([self.mix_embedding(i) if isinstance(i, Mapping)
                               else table.weight[self.instrument_id(i)] for i in instruments])
            instrument = torch.zeros(n, dtype=torch.long, device=self.device)
        else:
            emb = None
            instrument = torch.tensor([self.instrument_id(i) for i in instruments], device=self.device)
        use_autocast = self.dtype != torch.float32
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=use_autocast):
            if self.fast:
                wav = self.model.synthesize(instrument, pitch, velocity, instrument_embedding=emb,
                                            weights=self.decoder_weights())
            else:
                wav = self.model(instrument, pitch, velocity, instrument_embedding=emb)
        return wav.float().cpu().numpy()


def morph_mix(source: str, target: str, position: float) -> dict[str, float]:
    """The timbre ``position`` of the way from ``source`` to ``target``: ``{source: 1 - p, target: p}``.

    Position 0 is ``source``'s own instrument embedding, 1 is ``target``'s; between, their
    rows of the instrument table are mixed linearly (:meth:`Generator.mix_embedding`).

    Raises:
        UserError: the two are the same instrument, or ``position`` is not a number in [0, 1].
    """
    if source == target:
        raise UserError(f"morph: from and to are both {source!r}; name two instruments")
    if isinstance(position, bool) or not isinstance(position, (int, float)) or not 0 <= position <= 1:
        raise UserError(f"morph: position must be a number from 0 (from) to 1 (to), got {position!r}")
    return {source: 1.0 - float(position), target: float(position)}


def morph_positions(steps: int) -> list[float]:
    """``steps`` positions evenly from 0 to 1, both ends included (``steps`` >= 2)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise UserError(f"morph: steps must be an integer >= 2 (both ends included), got {steps!r}")
    return [i / (steps - 1) for i in range(steps)]
