"""SING's encoders: a note's padded waveform to its frames, one every ``stride`` samples.

The preset's ``model.frames`` chooses one (:data:`ENCODERS`):

- ``learnt`` (:class:`LearntEncoder`), the paper's: a windowed strided conv of the waveform,
  1x1 convs, a 1x1 conv to ``dimension``. ``paper``, ``tiny`` and ``table1`` run it.
- ``harmonic`` (:class:`HarmonicEncoder`), not in the paper: the log magnitudes of the note's
  first partials in each frame, measured (and the log levels of what lies beside them, for
  the noise head), plus corrections the same layers learn from zero. ``quick`` and ``small``
  run it; the decoder's heads play such frames back as the note before any training.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import check_parts
from .layers import WindowedConv1d, rewrite_convs
from .noise import mel_band_matrix, mel_to_pitch_bands, residual_levels
from .partials import ANALYSIS_FLOOR, HARMONIC_SCALE, partial_magnitudes


class LearntEncoder(nn.Module):
    """Waveform to learnt frames: the decoder's mirror, as in the paper.

    Args:
        dimension: values per frame (128); channels: width (4096).
        kernel_size, stride: the windowed conv's (1024, 256).
        rewrite_layers: 1x1 conv + ReLU blocks (2).
    """

    def __init__(self, dimension: int = 128, channels: int = 4096, kernel_size: int = 1024,
                 stride: int = 256, rewrite_layers: int = 2):
        super().__init__()
        self.analysis = WindowedConv1d(1, channels, kernel_size, stride)
        self.body = nn.Sequential(nn.ReLU(), *rewrite_convs(channels, rewrite_layers),
                                  nn.Conv1d(channels, dimension, 1))

    def forward(self, wav: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """Args: wav (B, T) already padded; pitch: not read. Returns: (B, D, (T - kernel) // stride + 1)."""
        return self.body(self.analysis(wav.unsqueeze(1)))


class HarmonicEncoder(nn.Module):
    """Waveform to harmonic frames: each frame is the log magnitudes of the note's first
    ``partials`` partials at the MIDI pitch (:func:`~sing_ray.models.partials.partial_magnitudes`,
    the adjoint of the partials head) and, with ``noise_bands``, the log levels of what the frame
    holds beside them in that many mel bands (:func:`~sing_ray.models.noise.residual_levels`),
    over :data:`~sing_ray.models.partials.HARMONIC_SCALE`, plus what the layers add (their last
    starts at zero). The frames then follow each partial's level whatever the pitch, and the
    pitch is an argument of every call.

    Args: as :class:`LearntEncoder`, and
        partials: the partials measured (the decoder's partials head plays as many);
        noise_bands: the noise bands measured (0: none); ``dimension`` must be their sum;
        sub_octaves: S > 0 measures the partials at multiples of f0 / 2^S, by least squares,
            since for low notes they lie closer than the window resolves.
        noise_scale: "mel" writes the noise levels of the mel bands it measures them in;
            "pitch" moves them to bands at fixed multiples of the note's f0
            (:func:`~sing_ray.models.noise.mel_to_pitch_bands`).
    """

    def __init__(self, dimension: int = 128, channels: int = 4096, kernel_size: int = 1024,
                 stride: int = 256, rewrite_layers: int = 2, partials: int = 64, noise_bands: int = 0,
                 sub_octaves: int = 0, noise_scale: str = "mel"):
        super().__init__()
        check_parts("harmonic", ("partials", "noise") if noise_bands else ("partials",), dimension, partials,
                    noise_bands, sub_octaves, noise_scale)
        self.noise_scale = noise_scale
        self.kernel_size, self.stride = kernel_size, stride
        self.partials, self.noise_bands, self.sub_octaves = partials, noise_bands, sub_octaves
        self.analysis = nn.Conv1d(partials + noise_bands, channels, 1)
        self.body = nn.Sequential(nn.ReLU(), *rewrite_convs(channels, rewrite_layers),
                                  nn.Conv1d(channels, dimension, 1))
        if noise_bands:
            self.register_buffer("noise_bands_to_bins", mel_band_matrix(noise_bands, kernel_size // 2 + 1),
                                 persistent=False)
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def measure(self, wav: torch.Tensor, pitch: torch.Tensor) -> torch.Tensor:
        """(B, T) padded notes -> (B, partials + noise_bands, frames) the log magnitudes of their
        partials and the log levels of their noise (floored at ``ANALYSIS_FLOOR``), float32."""
        if not self.noise_bands:
            magnitudes = partial_magnitudes(wav, pitch, self.partials, self.kernel_size, self.stride,
                                            self.sub_octaves)
        else:
            magnitudes, frames, remade = partial_magnitudes(wav, pitch, self.partials, self.kernel_size,
                                                            self.stride, self.sub_octaves, remade=True)
            levels = residual_levels(frames, remade, self.noise_bands_to_bins)
            if self.noise_scale == "pitch":
                log_levels = mel_to_pitch_bands(torch.log(levels + ANALYSIS_FLOOR), pitch)
                return torch.cat([torch.log(magnitudes + ANALYSIS_FLOOR), log_levels], dim=1)
            magnitudes = torch.cat([magnitudes, levels], dim=1)
        return torch.log(magnitudes + ANALYSIS_FLOOR)

    def forward(self, wav: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """Args: wav (B, T) already padded; pitch (B,) MIDI. Returns: (B, D, (T - kernel) // stride + 1)."""
        if pitch is None:
            raise ValueError("this encoder measures the note's partials: pass the notes' MIDI pitches")
        log_magnitudes = self.measure(wav, pitch).to(wav.dtype)
        return self.body(self.analysis(log_magnitudes)) + log_magnitudes / HARMONIC_SCALE


# The encoder of each kind of frames (model.frames).
ENCODERS = {"learnt": LearntEncoder, "harmonic": HarmonicEncoder}


def build_encoder(frames: str, dimension: int, channels: int, kernel_size: int, stride: int, rewrite_layers: int,
                  partials: int = 0, noise_bands: int = 0, sub_octaves: int = 0, noise_scale: str = "mel") -> nn.Module:
    """The encoder that writes ``frames`` (``learnt`` reads no partials, noise or sub-octaves)."""
    if frames == "harmonic":
        return HarmonicEncoder(dimension, channels, kernel_size, stride, rewrite_layers, partials, noise_bands,
                               sub_octaves, noise_scale)
    return LearntEncoder(dimension, channels, kernel_size, stride, rewrite_layers)
