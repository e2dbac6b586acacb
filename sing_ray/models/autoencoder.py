"""SING's autoencoder, phase 1: an encoder (:mod:`~sing_ray.models.encoders`) and the decoder
(:mod:`~sing_ray.models.decoder`) the later phases keep.

It learns (or, with harmonic frames, starts from) frames from which the decoder remakes the
note; the sequence phase then fits an LSTM to the frames its encoder writes. The presets run:
``paper`` and ``tiny`` learnt frames played by the transposed conv; ``table1`` learnt frames
played by the transposed conv and 64 partials; ``quick`` harmonic frames played by 64 partials
and 64 noise bands; ``small`` harmonic frames played by 128 partials at multiples of half the pitch.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import check_parts
from ..dsp import pad_wav, unpad_wav
from .decoder import Decoder
from .encoders import build_encoder
from .noise import noise_scale_kwargs


class Autoencoder(nn.Module):
    """Phase 1: encoder + decoder on notes of ``wav_length`` samples padded by ``pad`` each side.

    Args: the :class:`~sing_ray.models.decoder.Decoder`'s, and ``wav_length`` and ``pad`` (the
    note's length and its padding); ``frames`` also chooses the encoder.
    """

    def __init__(self, dimension: int = 128, channels: int = 4096, kernel_size: int = 1024,
                 stride: int = 256, context_size: int = 9, rewrite_layers: int = 2,
                 wav_length: int = 64000, pad: int = 2304, clock_harmonics: int = 0, frames: str = "learnt",
                 heads=("transposed_conv",), partials: int = 0, noise_bands: int = 0, sub_octaves: int = 0,
                 noise_scale: str = "mel"):
        super().__init__()
        heads = check_parts(frames, heads, dimension, partials, noise_bands, sub_octaves, noise_scale)
        self.kwargs = dict(dimension=dimension, channels=channels, kernel_size=kernel_size, stride=stride,
                           context_size=context_size, rewrite_layers=rewrite_layers, wav_length=wav_length, pad=pad,
                           clock_harmonics=clock_harmonics, frames=frames, heads=heads, partials=partials,
                           noise_bands=noise_bands, sub_octaves=sub_octaves, **noise_scale_kwargs(noise_scale))
        self.wav_length, self.pad = wav_length, pad
        self.encoder = build_encoder(frames, dimension, channels, kernel_size, stride, rewrite_layers, partials,
                                     noise_bands, sub_octaves, noise_scale)
        self.decoder = Decoder(dimension, channels, kernel_size, stride, context_size, rewrite_layers,
                               clock_harmonics, frames, heads, partials, noise_bands, sub_octaves, noise_scale)
        self.num_frames = self.decoder.embedding_length(wav_length + 2 * pad)

    def encode(self, wav: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """Args: wav (B, wav_length); pitch (B,) MIDI (the harmonic encoder needs it).
        Returns: embeddings (B, D, num_frames)."""
        return self.encoder(pad_wav(wav, self.pad), pitch)

    def decode(self, embedding: torch.Tensor, pitch: torch.Tensor | None = None,
               offset: int | torch.Tensor = 0) -> torch.Tensor:
        """Args: embedding (B, D, frames); pitch (B,) MIDI (a decoder with a clock or partials
        needs it); offset: the sample of the note where the encoded waveform starts (0, or (B,)
        for windows). Returns: (B, samples)."""
        first_frame = torch.as_tensor(offset, dtype=torch.float64) / self.decoder.stride
        return unpad_wav(self.decoder(embedding, pitch, first_frame), self.pad)

    def forward(self, wav: torch.Tensor, pitch: torch.Tensor | None = None,
                offset: int | torch.Tensor = 0) -> torch.Tensor:
        """Args: wav (B, samples), the whole note or a window of it starting at sample ``offset``
        (int, or (B,)); pitch (B,) MIDI. Returns: the reconstruction (B, samples)."""
        return self.decode(self.encode(wav, pitch), pitch, offset)
