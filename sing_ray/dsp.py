"""Signal processing in torch: windows, STFT log power, padding.

Everything here works on batches ``(B, T)`` on any device and is differentiable,
so the spectral loss can train through it.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

INT16_SCALE = 32768.0


def hann_window(length: int, squared: bool = False, device=None, dtype=torch.float32) -> torch.Tensor:
    """A periodic Hann window ``(length,)``; squared, it smooths SING's long conv kernels."""
    window = torch.hann_window(length, periodic=True, device=device, dtype=dtype)
    return window * window if squared else window


def stft_magnitude(wav: torch.Tensor, n_fft: int = 1024, hop_length: int = 256) -> torch.Tensor:
    """Magnitude STFT with a Hann window.

    Args:
        wav: (B, T) or (T,) waveform.
    Returns:
        (B, n_fft // 2 + 1, 1 + T // hop_length) magnitudes.
    """
    squeeze = wav.dim() == 1
    if squeeze:
        wav = wav.unsqueeze(0)
    window = hann_window(n_fft, device=wav.device, dtype=wav.dtype)
    spec = torch.stft(wav, n_fft=n_fft, hop_length=hop_length, window=window,
                      center=True, return_complex=True)
    mag = spec.abs()
    return mag[0] if squeeze else mag


def log_power(wav: torch.Tensor, n_fft: int = 1024, hop_length: int = 256,
              offset: float = 1.0) -> torch.Tensor:
    """``l(x) = log(offset + |STFT(x)|^2)``: the representation SING's spectral loss compares.

    ``offset`` 1.0 is the paper's ``log(1 + |STFT(x)|^2)`` (computed with ``log1p``,
    the same numbers as before the offset existed). A smaller offset lowers the floor
    below which quiet bins all look alike: with 1.0, a bin whose power is far below 1
    (a near-silent output) contributes ``log(1 + p) ~ p``, whose gradient vanishes.

    Args:
        wav: (B, T) waveform in [-1, 1].
        offset: positive; added to the power before the log.
    Returns:
        (B, n_fft // 2 + 1, frames).
    """
    squeeze = wav.dim() == 1
    if squeeze:
        wav = wav.unsqueeze(0)
    window = hann_window(n_fft, device=wav.device, dtype=wav.dtype)
    spec = torch.stft(wav, n_fft=n_fft, hop_length=hop_length, window=window,
                      center=True, return_complex=True)
    # |z|^2 from real and imaginary parts: abs() then square has an infinite
    # gradient at 0, which silence in the target would hit.
    power = spec.real.square() + spec.imag.square()
    out = torch.log1p(power) if offset == 1.0 else torch.log(power + offset)
    return out[0] if squeeze else out


def log_rms(wav: torch.Tensor, frame_length: int = 1024, hop_length: int = 256,
            floor: float = 1e-5) -> torch.Tensor:
    """Natural log of the RMS amplitude of each frame: a loudness envelope.

    Frames are rectangular, ``frame_length`` long, every ``hop_length`` samples,
    centred as the STFT's (``frame_length // 2`` zeros on each side). The floor is
    added in power, ``log(sqrt(mean(x^2) + floor^2))``, so the envelope is smooth and
    bottoms out at ``log(floor)`` (1e-5: -100 dBFS) instead of minus infinity.

    Args:
        wav: (B, T) or (T,) waveform.
    Returns:
        (B, 1 + T // hop_length) for an even ``frame_length`` (or (frames,)).
    """
    squeeze = wav.dim() == 1
    if squeeze:
        wav = wav.unsqueeze(0)
    half = frame_length // 2
    power = F.pad(wav.square().unsqueeze(1), (half, half))
    mean_square = F.avg_pool1d(power, frame_length, hop_length).squeeze(1)
    out = 0.5 * torch.log(mean_square + floor * floor)
    return out[0] if squeeze else out


def pad_wav(wav: torch.Tensor, pad: int) -> torch.Tensor:
    """Zero-pad ``pad`` samples on each side: (B, T) -> (B, T + 2 pad).

    SING pads each 64,000-sample note by 2,304 samples so that the first and
    last samples are covered by as many overlapping decoder windows as the
    middle ones; the frames count becomes 265.
    """
    return F.pad(wav, (pad, pad)) if pad else wav


def unpad_wav(wav: torch.Tensor, pad: int) -> torch.Tensor:
    """Inverse of :func:`pad_wav`: (B, T + 2 pad) -> (B, T)."""
    return wav[..., pad:wav.shape[-1] - pad] if pad else wav


def pcm16_to_float(pcm: bytes | np.ndarray) -> np.ndarray:
    """int16 PCM (raw bytes or array) to float32 in [-1, 1)."""
    arr = np.frombuffer(pcm, dtype="<i2") if isinstance(pcm, (bytes, bytearray, memoryview)) else pcm
    return arr.astype(np.float32) / INT16_SCALE


def float_to_pcm16(wav: np.ndarray) -> np.ndarray:
    """float in [-1, 1] to int16, clipping what lies outside."""
    return np.clip(np.round(np.asarray(wav, dtype=np.float64) * INT16_SCALE), -32768, 32767).astype(np.int16)
