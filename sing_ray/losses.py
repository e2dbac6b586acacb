"""SING's losses and the evaluation metrics of the paper's Table 1."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .dsp import log_power


def spectral_loss(output: torch.Tensor, target: torch.Tensor, n_fft: int = 1024,
                  hop_length: int = 256, distance: str = "l1") -> torch.Tensor:
    """``|| l(x_hat) - l(x) ||`` with ``l(x) = log(1 + |STFT x|^2)``, averaged over bins.

    Comparing log power spectra ignores phase, which the paper shows matters:
    the decoder may shift partials in phase freely, which a waveform loss
    punishes for no audible reason.

    Args:
        output, target: (B, T) waveforms.
        distance: ``l1`` (the paper's) or ``mse``.
    Returns:
        scalar tensor.
    """
    a = log_power(output, n_fft, hop_length)
    b = log_power(target, n_fft, hop_length)
    if distance == "l1":
        return F.l1_loss(a, b)
    if distance == "mse":
        return F.mse_loss(a, b)
    raise ValueError(f"unknown spectral distance {distance!r}; expected l1 or mse")


def wav_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error on waveforms. Args: (B, T) each. Returns: scalar."""
    return F.mse_loss(output, target)


def build_loss(loss: str = "spectral", spectral_distance: str = "l1", n_fft: int = 1024,
               hop_length: int = 256) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss named by the config (``train.loss``)."""
    if loss == "spectral":
        return lambda out, ref: spectral_loss(out, ref, n_fft, hop_length, spectral_distance)
    if loss == "wav":
        return wav_loss
    raise ValueError(f"unknown loss {loss!r}; expected spectral or wav")


@torch.no_grad()
def table1_metrics(output: torch.Tensor, target: torch.Tensor, n_fft: int = 1024,
                   hop_length: int = 256) -> dict[str, torch.Tensor]:
    """Per-note wav MSE and spectral L1 (Table 1's two columns).

    Args:
        output, target: (B, T) waveforms.
    Returns:
        ``{"wav_mse": (B,), "spectral_l1": (B,)}``; average them over a split
        weighted by note (sum, then divide by the count).
    """
    wav_mse = (output - target).square().mean(dim=-1)
    spec = (log_power(output, n_fft, hop_length) - log_power(target, n_fft, hop_length)).abs()
    return {"wav_mse": wav_mse, "spectral_l1": spec.mean(dim=(-1, -2))}
