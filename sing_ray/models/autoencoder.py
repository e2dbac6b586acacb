"""SING's convolutional encoder and decoder, and the autoencoder of phase 1.

The decoder turns 128-d frames at 62.5 Hz into a waveform: a context conv, a
few 1x1 "rewrite" convs, then a transposed conv whose 1024-sample kernel,
smoothed by a squared Hann window, is overlap-added every 256 samples. The
encoder mirrors it. Length arithmetic (frames <-> samples) lives on the decoder.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..dsp import hann_window, pad_wav, unpad_wav


class WindowedConv1d(nn.Conv1d):
    """Conv1d whose kernel is multiplied by a squared Hann window at every call.

    The window makes each learnt filter taper to zero at its ends, so that the
    strided frames it reads (encoder) or writes (decoder) blend without clicks.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("window", hann_window(self.kernel_size[0], squared=True), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.window, self.bias)


class WindowedConvTranspose1d(nn.ConvTranspose1d):
    """ConvTranspose1d with a squared-Hann-windowed kernel (see :class:`WindowedConv1d`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("window", hann_window(self.kernel_size[0], squared=True), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(x, self.weight * self.window, self.bias, self.stride)


def _rewrite(channels: int, layers: int) -> list[nn.Module]:
    out: list[nn.Module] = []
    for _ in range(layers):
        out += [nn.Conv1d(channels, channels, 1), nn.ReLU()]
    return out


class ConvolutionalDecoder(nn.Module):
    """Frames to waveform.

    Args:
        dimension: embedding size per frame (128).
        channels: width (4096).
        kernel_size, stride: of the final transposed conv (1024, 256).
        context_size: kernel of the first conv, in frames (9), "same" padded.
        rewrite_layers: 1x1 conv + ReLU blocks (2).
    """

    def __init__(self, dimension: int = 128, channels: int = 4096, kernel_size: int = 1024,
                 stride: int = 256, context_size: int = 9, rewrite_layers: int = 2):
        super().__init__()
        self.kwargs = dict(dimension=dimension, channels=channels, kernel_size=kernel_size, stride=stride,
                           context_size=context_size, rewrite_layers=rewrite_layers)
        self.kernel_size, self.stride = kernel_size, stride
        self.body = nn.Sequential(
            nn.Conv1d(dimension, channels, context_size, padding=context_size // 2), nn.ReLU(),
            *_rewrite(channels, rewrite_layers))
        self.synthesis = WindowedConvTranspose1d(channels, 1, kernel_size, stride)

    def wav_length(self, embedding_length: int) -> int:
        """Samples produced from ``embedding_length`` frames: 265 frames -> 68,608 samples."""
        return (embedding_length - 1) * self.stride + self.kernel_size

    def embedding_length(self, wav_length: int) -> int:
        """Frames that produce exactly ``wav_length`` samples; ValueError if none does."""
        frames, rest = divmod(wav_length - self.kernel_size, self.stride)
        if rest or frames < 0:
            raise ValueError(f"{wav_length} samples is not kernel_size ({self.kernel_size}) "
                             f"plus a multiple of stride ({self.stride})")
        return frames + 1

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """Args: embedding (B, D, L). Returns: (B, wav_length(L))."""
        return self.synthesis(self.body(embedding)).squeeze(1)


class ConvolutionalEncoder(nn.Module):
    """Waveform to frames: the decoder's mirror (windowed strided conv, 1x1 convs, 1x1 to D).

    Args: as :class:`ConvolutionalDecoder`.
    """

    def __init__(self, dimension: int = 128, channels: int = 4096, kernel_size: int = 1024,
                 stride: int = 256, rewrite_layers: int = 2):
        super().__init__()
        self.kwargs = dict(dimension=dimension, channels=channels, kernel_size=kernel_size, stride=stride,
                           rewrite_layers=rewrite_layers)
        self.analysis = WindowedConv1d(1, channels, kernel_size, stride)
        self.body = nn.Sequential(nn.ReLU(), *_rewrite(channels, rewrite_layers),
                                  nn.Conv1d(channels, dimension, 1))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Args: wav (B, T) already padded. Returns: (B, D, (T - kernel) // stride + 1)."""
        return self.body(self.analysis(wav.unsqueeze(1)))


class Autoencoder(nn.Module):
    """Phase 1: encoder + decoder on notes of ``wav_length`` samples padded by ``pad`` each side."""

    def __init__(self, dimension: int = 128, channels: int = 4096, kernel_size: int = 1024,
                 stride: int = 256, context_size: int = 9, rewrite_layers: int = 2,
                 wav_length: int = 64000, pad: int = 2304):
        super().__init__()
        self.kwargs = dict(dimension=dimension, channels=channels, kernel_size=kernel_size, stride=stride,
                           context_size=context_size, rewrite_layers=rewrite_layers,
                           wav_length=wav_length, pad=pad)
        self.wav_length, self.pad = wav_length, pad
        self.encoder = ConvolutionalEncoder(dimension, channels, kernel_size, stride, rewrite_layers)
        self.decoder = ConvolutionalDecoder(dimension, channels, kernel_size, stride, context_size, rewrite_layers)
        self.num_frames = self.decoder.embedding_length(wav_length + 2 * pad)

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """Args: wav (B, wav_length). Returns: embeddings (B, D, num_frames)."""
        return self.encoder(pad_wav(wav, self.pad))

    def decode(self, embedding: torch.Tensor) -> torch.Tensor:
        """Args: embedding (B, D, num_frames). Returns: (B, wav_length)."""
        return unpad_wav(self.decoder(embedding), self.pad)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Args: wav (B, wav_length). Returns: reconstruction (B, wav_length)."""
        return self.decode(self.encode(wav))
