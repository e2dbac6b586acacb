"""SING's losses, the other training losses, and the evaluation metrics of the paper's Table 1.

A training loss is a weighted sum of terms named by ``train.loss``
(``"spectral"``, ``"mrstft + 0.5*spectral + 0.05*wav"``; the syntax is
:func:`sing_ray.config.parse_loss`). Each term is a small ``nn.Module`` whose
arguments are its constructor's; :func:`build_loss` turns the config into one
:class:`WeightedLoss`. The paper's loss is the term ``spectral`` with the default
``log_offset`` of 1.0.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import LOUDNESS_WEIGHTINGS, SPECTRAL_DISTANCES, TrainConfig, parse_loss
from .dsp import log_power, log_rms

MRSTFT_FFT_SIZES = (2048, 1024, 512, 256, 128, 64)


def spectral_loss(output: torch.Tensor, target: torch.Tensor, n_fft: int = 1024,
                  hop_length: int = 256, distance: str = "l1", log_offset: float = 1.0) -> torch.Tensor:
    """``|| l(x_hat) - l(x) ||`` with ``l(x) = log(log_offset + |STFT x|^2)``, averaged over bins.

    Comparing log power spectra ignores phase, which the paper shows matters:
    the decoder may shift partials in phase freely, which a waveform loss
    punishes for no audible reason. ``log_offset`` 1.0 is the paper's ``log(1 + p)``.

    Args:
        output, target: (B, T) waveforms.
        distance: ``l1`` (the paper's) or ``mse``.
    Returns:
        scalar tensor.
    """
    if distance not in SPECTRAL_DISTANCES:
        raise ValueError(f"unknown spectral distance {distance!r}; expected l1 or mse")
    a = log_power(output, n_fft, hop_length, log_offset)
    b = log_power(target, n_fft, hop_length, log_offset)
    return F.l1_loss(a, b) if distance == "l1" else F.mse_loss(a, b)


def wav_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error on waveforms. Args: (B, T) each. Returns: scalar."""
    return F.mse_loss(output, target)


class SpectralLoss(nn.Module):
    """The paper's loss: :func:`spectral_loss` (term ``spectral``).

    At a near-silent output its gradient vanishes: a bin of power ``p << log_offset``
    contributes ``log(log_offset + p) ~ log(log_offset) + p / log_offset``, whose
    derivative in the waveform is proportional to the bin's amplitude. A model that
    falls quiet early in training gets almost no push back (docs/training.md, Silence).
    """

    def __init__(self, n_fft: int = 1024, hop_length: int = 256, distance: str = "l1",
                 log_offset: float = 1.0):
        super().__init__()
        if distance not in SPECTRAL_DISTANCES:
            raise ValueError(f"unknown spectral distance {distance!r}; expected l1 or mse")
        if not log_offset > 0:
            raise ValueError(f"log_offset must be positive, got {log_offset}")
        self.n_fft, self.hop_length, self.distance, self.log_offset = n_fft, hop_length, distance, log_offset

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: (B, T) waveforms. Returns: scalar."""
        return spectral_loss(output, target, self.n_fft, self.hop_length, self.distance, self.log_offset)


class WavLoss(nn.Module):
    """:func:`wav_loss`, mean squared error on waveforms (term ``wav``)."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: (B, T) waveforms. Returns: scalar."""
        return wav_loss(output, target)


class MRSTFTLoss(nn.Module):
    """auraloss's multi-resolution STFT loss (term ``mrstft``) on (B, T) waveforms.

    For each FFT size (hop ``fft // 4``, Hann window of ``fft``): spectral convergence
    ``||Y - X||_F / ||Y||_F`` plus the L1 distance of log magnitudes, averaged over the
    resolutions (Yamamoto et al., 2019). Its log magnitude, floored at ``sqrt(eps)``,
    has a gradient of ``1 / |X|`` at a quiet bin, so a near-silent output is pushed
    towards the target's level, where the paper's ``log(1 + p)`` barely moves it.

    Args:
        fft_sizes: FFT sizes, largest first by convention.
        eps: floor of the power ``|STFT|^2`` (auraloss's ``eps``) before the log.
    """

    def __init__(self, fft_sizes: Sequence[int] = MRSTFT_FFT_SIZES, eps: float = 1e-7):
        super().__init__()
        # Imported here: only configs that use the term need auraloss loaded.
        from auraloss.freq import MultiResolutionSTFTLoss

        sizes = [int(n) for n in fft_sizes]
        self.fft_sizes, self.eps = tuple(sizes), eps
        self.inner = MultiResolutionSTFTLoss(
            fft_sizes=sizes, hop_sizes=[n // 4 for n in sizes], win_lengths=sizes, window="hann_window",
            w_sc=1.0, w_log_mag=1.0, w_lin_mag=0.0, w_phs=0.0, eps=eps)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: (B, T) waveforms (auraloss takes (B, C, T): one channel is added). Returns: scalar."""
        return self.inner(output.unsqueeze(1), target.unsqueeze(1))


class LoudnessLoss(nn.Module):
    """L1 distance between frame loudness envelopes (term ``loudness``).

    The envelope is :func:`sing_ray.dsp.log_rms`: the natural log of each frame's RMS
    amplitude (``frame_length`` samples every ``hop_length``), floored smoothly at
    ``floor`` (1e-5: -100 dBFS). A difference of 1 is a factor e (8.7 dB). Scaling the
    output by ``g`` moves its envelope by ``log g`` in every frame above the floor, so
    the level gets a gradient of the same size at any level, silence included.

    ``weighting`` says how the frames' differences are averaged over each note:
    ``"frames"``, every frame the same; ``"level"``, each frame in proportion to the
    target's RMS amplitude there (the weights of a note sum to 1, so a quiet note counts
    as much as a loud one). A plucked note's tail, 40 dB under its attack, then no longer
    outweighs the attack and body, where its level is heard.
    """

    def __init__(self, frame_length: int = 1024, hop_length: int = 256, floor: float = 1e-5,
                 weighting: str = "frames"):
        super().__init__()
        if not floor > 0:
            raise ValueError(f"floor must be positive, got {floor}")
        if weighting not in LOUDNESS_WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(LOUDNESS_WEIGHTINGS)}, got {weighting!r}")
        self.frame_length, self.hop_length, self.floor = frame_length, hop_length, floor
        self.weighting = weighting

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: (B, T) waveforms. Returns: scalar."""
        a = log_rms(output, self.frame_length, self.hop_length, self.floor)
        b = log_rms(target, self.frame_length, self.hop_length, self.floor)
        if self.weighting == "frames":
            return F.l1_loss(a, b)
        weights = b.detach().exp()
        weights = weights / weights.sum(dim=-1, keepdim=True)
        return ((a - b).abs() * weights).sum(dim=-1).mean()

    def extra_repr(self) -> str:
        return f"weighting={self.weighting!r}"


# A partial of a harmonic frame is audible from this level up (amplitude, dB re full scale):
# 30 dB above the encoder's floor (-100 dB). On the quick start's set a velocity-25 note's
# loudest partial is at -62 to -37 dB (median -45); 5 % of those notes' bins are above this,
# 16 % of velocity-127 notes'.
AUDIBLE_DB = -70.0


class FrameLoss(nn.Module):
    """The sequence phase's loss: MSE between frames, plus ``audible`` times the MSE over the
    target's audible bins alone (harmonic frames only; 0 is the paper's MSE alone).

    The MSE averages every (partial, frame) alike, and most of them are the encoder's floor:
    the partials above Nyquist, the silence before the onset, a decayed note's tail. A
    struck note's attack, a few loud frames of a few partials, is a small share of it; the
    LSTM fits the floor and leaves the attack 15 to 20 dB short, on its train notes too
    (docs/quality-diary.md, section 14). The ``audible`` term is the mean over the bins where the
    target partial is louder than :data:`AUDIBLE_DB`, whatever their number: the notes' sound
    counts as much as their floor. With noise bands the frames' noise levels count as the
    partials do (a level above :data:`AUDIBLE_DB` is audible noise: white noise at that
    density is -70 dBFS).

    Args:
        audible: the weight of the audible bins' MSE (``train.sequence_audible``).
        scale: frame value v plays amplitude ``exp(scale * v)`` (``HARMONIC_SCALE``).
    """

    def __init__(self, audible: float = 0.0, scale: float = 4.0):
        super().__init__()
        if not audible >= 0:
            raise ValueError(f"audible must be >= 0, got {audible}")
        self.audible, self.scale = audible, scale
        # frame value v plays amplitude exp(scale * v), 20 log10(e) * scale * v dB
        self.audible_value = AUDIBLE_DB / (20.0 / math.log(10.0)) / scale

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: (B, D, F) frames. Returns: scalar."""
        loss = F.mse_loss(output, target)
        if self.audible:
            on = (target > self.audible_value).to(output.dtype)
            # The gradient reaches an audible bin whatever the output there (no clamp on it).
            loss = loss + self.audible * ((output - target).square() * on).sum() / on.sum().clamp(min=1.0)
        return loss

    def extra_repr(self) -> str:
        return f"audible={self.audible}"


class WeightedLoss(nn.Module):
    """A weighted sum of named loss terms: ``sum(weight * term(output, target))``.

    Args:
        terms: ``{name: (weight, module)}`` in the expression's order.
    """

    def __init__(self, terms: Mapping[str, tuple[float, nn.Module]]):
        super().__init__()
        if not terms:
            raise ValueError("a loss needs at least one term")
        self.weights = {name: float(weight) for name, (weight, _) in terms.items()}
        self.terms = nn.ModuleDict({name: module for name, (_, module) in terms.items()})

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: (B, T) waveforms. Returns: scalar, the weighted sum."""
        return self._sum(self.components(output, target))

    def components(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each term's value, unweighted: ``{name: scalar}`` (for logging each term)."""
        return {name: module(output, target) for name, module in self.terms.items()}

    def _sum(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total = None
        for name, value in values.items():
            weight = self.weights[name]
            # A lone term of weight 1 is returned as is: "spectral" is the paper's loss, bit for bit.
            value = value if weight == 1.0 else weight * value
            total = value if total is None else total + value
        return total

    def describe(self) -> str:
        """The loss as an expression, e.g. ``mrstft + 0.5*spectral``."""
        return " + ".join(name if w == 1.0 else f"{w:g}*{name}" for name, w in self.weights.items())

    def extra_repr(self) -> str:
        return self.describe()


def build_loss_terms(train: TrainConfig, phase: str | None = None) -> dict[str, tuple[float, nn.Module]]:
    """The terms of ``train.loss``, each built from its ``train.*`` fields: ``{name: (weight, module)}``.

    Raises:
        ConfigError: an expression :func:`sing_ray.config.parse_loss` refuses.
    """
    def make(name: str) -> nn.Module:
        if name == "spectral":
            return SpectralLoss(train.n_fft, train.hop_length, train.spectral_distance, train.log_offset)
        if name == "wav":
            return WavLoss()
        if name == "mrstft":
            return MRSTFTLoss(train.mrstft_fft_sizes, train.mrstft_eps)
        if name == "loudness":
            return LoudnessLoss(train.n_fft, train.hop_length, weighting=train.loudness_weighting)
        raise AssertionError(f"parse_loss admitted an unbuilt term {name!r}")

    expression = train.loss if phase is None else train.phase_loss(phase)
    where = "train.loss" if phase is None or not train.phase(phase).loss else f"train.{phase}.loss"
    return {name: (weight, make(name)) for name, weight in parse_loss(expression, where)}


def build_loss(train: TrainConfig | str = "spectral", phase: str | None = None, **fields) -> WeightedLoss:
    """The training loss ``loss(output, target) -> scalar`` that ``train.loss`` names.

    Build it once per phase and call it every step (auraloss's modules are made here).

    Args:
        train: the ``TrainConfig``, or a loss expression with other ``TrainConfig``
            fields as keywords: ``build_loss("spectral", spectral_distance="mse")``.
        phase: build that phase's loss (``train.<phase>.loss``, else ``train.loss``).
    Returns:
        a :class:`WeightedLoss`; (B, T) waveforms in, a scalar out.
    """
    if isinstance(train, str):
        train = TrainConfig(loss=train, **fields)
    elif fields:
        raise TypeError("build_loss: keyword fields go with a loss expression, not a TrainConfig")
    return WeightedLoss(build_loss_terms(train, phase))


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
