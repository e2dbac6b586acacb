"""The decoder's heads: what turns each hidden row of the decoder's trunk into sound.

Every head reads the trunk's last hidden layer, one row of ``channels`` per frame, and writes
that frame's window of ``kernel_size`` samples; the decoder sums the heads' windows and
overlap-adds them every ``stride`` samples (:class:`~sing_ray.models.decoder.Decoder`). The
presets (``model.heads``) run:

- ``transposed_conv`` (:class:`TransposedConvHead`), the paper's: ``paper``, ``tiny``, ``table1``;
- ``partials`` (:class:`PartialsHead`), not in the paper: ``table1`` beside the transposed conv,
  ``quick`` and ``small``;
- ``noise`` (:class:`NoiseHead`), not in the paper: ``quick``.

A head's parameters keep the layout of the convolution it was before the decoder had heads
((out, in, 1) for a 1x1, which checkpoints store) and its default initialisation, drawn in the
same order, so that a seed builds the weights it always built. Each head reports the
floating-point operations it costs per frame (:meth:`Head.flops_per_frame`), from which
``sing-ray bench render`` draws its roofline.
"""
from __future__ import annotations

import abc
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..dsp import hann_window
from .layers import pointwise_parameters
from .noise import NOISE_GAIN, mel_band_matrix, noise_phases, noise_windows, pitch_to_mel_bands
from .partials import ANALYSIS_FLOOR, HARMONIC_MAX_LOG, HARMONIC_SCALE, PARTIAL_BIAS, partial_windows

# Starting level of every noise band, softplus(-7) = 0.0009: noise at about -63 dBFS RMS,
# under the partials' start, so that the loss raises it only where the data has noise.
NOISE_BIAS = -7.0
# The noise's random phases: one row per frame of the note (its 265 frames at the paper's
# sizes fit), the same on every call, so a note renders the same whatever the batch or window.
NOISE_TABLE_FRAMES = 512
NOISE_SEED = 20181203


class Rows(NamedTuple):
    """Where the rows a head reads lie in the note.

    Attributes:
        pitch: (B,) MIDI pitches, or None (a head that needs them says so).
        first_sample: the padded note's sample where row 0's window starts (int, float or (B,)).
        first_frame: the note frame of row 0, whole (int or (B,)): the noise's row of phases.
        values: (B, n, V) the harmonic frames' values this head plays (its :attr:`Head.frame_values`
            of them), or None with learnt frames.
    """

    pitch: torch.Tensor | None
    first_sample: int | float | torch.Tensor
    first_frame: int | torch.Tensor
    values: torch.Tensor | None = None


class Head(nn.Module, metaclass=abc.ABCMeta):
    """One of the decoder's heads (see the module docstring); a head defines the three abstract
    methods, or it cannot be built.

    Attributes:
        frame_values: how many of a harmonic frame's values it plays (0: none), in the order
            of :data:`~sing_ray.config.HEADS`.
    """

    frame_values = 0

    @abc.abstractmethod
    def gemm_weights(self, cast) -> tuple[torch.Tensor, ...]:
        """Its weights as :meth:`forward` wants them, through ``cast`` (identity or a dtype change)."""

    @abc.abstractmethod
    def forward(self, hidden: torch.Tensor, weights: tuple[torch.Tensor, ...], rows: Rows) -> torch.Tensor:
        """(B, n, channels) hidden rows -> (B, n, kernel_size) windows, float32."""

    def constant(self, weights: tuple[torch.Tensor, ...]) -> torch.Tensor | None:
        """What the head adds to every sample of the overlap-added waveform (None: nothing)."""
        return None

    @abc.abstractmethod
    def flops_per_frame(self) -> float:
        """Floating-point operations per frame (a multiply-add is 2; element-wise work left out)."""


def _read(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, normed: bool) -> torch.Tensor:
    """(..., channels) hidden rows through a 1x1 head's weights -> (..., outputs) float32.

    ``normed``: read the rows layer-normed over their channels, in float32. A decoder without
    the transposed conv needs it: nothing else bounds the hidden layer's scale, and without the
    norm the spectral loss drives it up until every amplitude underflows to exact silence
    (within 50 steps).
    """
    if normed:
        hidden = F.layer_norm(hidden.float(), (hidden.shape[-1],))
        weight, bias = weight.float(), bias.float()
    return F.linear(hidden, weight, bias).float()


def _harmonic(out: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Amplitudes of harmonic frames: ``exp(HARMONIC_SCALE * value)`` times ``exp(out)``, what the
    layers read (their weights start at zero, a factor 1), at most ``exp(HARMONIC_MAX_LOG)``."""
    return torch.exp((out + HARMONIC_SCALE * values.float()).clamp(max=HARMONIC_MAX_LOG))


class TransposedConvHead(Head):
    """The paper's: each row times a learnt (channels, kernel_size) kernel under a squared Hann
    window, the kernel's bias added once per sample: SING's final transposed conv, as a GEMM.

    Parameters: ``weight`` (channels, 1, kernel_size) and ``bias`` (1,), those of
    ``nn.ConvTranspose1d(channels, 1, kernel_size, stride)``.
    """

    def __init__(self, channels: int, kernel_size: int = 1024, stride: int = 256):
        super().__init__()
        conv = nn.ConvTranspose1d(channels, 1, kernel_size, stride)
        self.weight, self.bias = conv.weight, conv.bias
        self.channels, self.kernel_size = channels, kernel_size
        self.register_buffer("window", hann_window(kernel_size, squared=True), persistent=False)

    def gemm_weights(self, cast) -> tuple[torch.Tensor, torch.Tensor]:
        """``(kernel (channels, kernel_size) with the window applied, bias (1,))``."""
        return cast((self.weight * self.window).squeeze(1)), cast(self.bias)

    def forward(self, hidden: torch.Tensor, weights: tuple[torch.Tensor, ...], rows: Rows) -> torch.Tensor:
        # In float32 whatever the GEMM's dtype, so that bfloat16 rounding is not compounded
        # when the windows are summed.
        return torch.matmul(hidden, weights[0]).float()

    def constant(self, weights: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return weights[1].float()

    def flops_per_frame(self) -> float:
        return 2.0 * self.channels * self.kernel_size


class PartialsHead(Head):
    """The note's first ``partials`` partials at the MIDI pitch, their amplitudes per frame read
    from the row (:func:`~sing_ray.models.partials.partial_windows`). Not in the paper.

    With learnt frames the amplitude is the softplus of what the row reads (the bias starts at
    :data:`~sing_ray.models.partials.PARTIAL_BIAS`). With harmonic frames partial k's amplitude
    is ``exp(HARMONIC_SCALE * frame[k])`` times what the row reads, the weights starting at zero
    (a factor 1), so that the frames the harmonic encoder writes play back as the note; with
    ``sub_octaves`` a partial then plays its amplitude less the encoder's floor
    (:data:`~sing_ray.models.partials.ANALYSIS_FLOOR`), so that what the frames call silent
    plays nothing. Parameters: ``weight`` (partials, channels, 1), ``bias`` (partials,).

    Args:
        normed: read the rows layer-normed (a decoder without the transposed conv; see :func:`_read`).
    """

    def __init__(self, channels: int, partials: int, kernel_size: int = 1024, stride: int = 256,
                 sub_octaves: int = 0, harmonic: bool = False, normed: bool = False):
        super().__init__()
        self.weight, self.bias = pointwise_parameters(channels, partials)
        nn.init.constant_(self.bias, PARTIAL_BIAS)
        if harmonic:
            nn.init.zeros_(self.weight)
            nn.init.zeros_(self.bias)
        self.channels, self.partials, self.kernel_size, self.stride = channels, partials, kernel_size, stride
        self.sub_octaves, self.harmonic, self.normed = sub_octaves, harmonic, normed
        self.frame_values = partials if harmonic else 0

    def gemm_weights(self, cast) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight (partials, channels), bias (partials,))``, pre-softplus."""
        return cast(self.weight.squeeze(-1)), cast(self.bias)

    def amplitudes(self, hidden: torch.Tensor, weights: tuple[torch.Tensor, ...],
                   values: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n, channels) rows (and (B, n, partials) harmonic frame values) -> (B, n, partials)
        non-negative float32 amplitudes."""
        out = _read(hidden, *weights, self.normed)
        if values is None:
            return F.softplus(out)
        amplitudes = _harmonic(out, values)
        if self.sub_octaves:
            # The encoder's frames are log(magnitude + ANALYSIS_FLOOR): take the floor off, so
            # that a partial the frames call silent plays nothing. Left at the floor, the
            # partials under the pitch would fill a decayed note's tail at -120 dBFS with a
            # sub-octave the pitch tracker follows (docs/quality-diary.md, section 13).
            amplitudes = (amplitudes - ANALYSIS_FLOOR).clamp(min=0)
        return amplitudes

    def forward(self, hidden: torch.Tensor, weights: tuple[torch.Tensor, ...], rows: Rows) -> torch.Tensor:
        if rows.pitch is None:
            raise ValueError("this decoder plays the note's partials: pass the notes' MIDI pitches")
        amplitudes = self.amplitudes(hidden, weights, rows.values)
        return partial_windows(amplitudes, rows.pitch, rows.first_sample, self.kernel_size, self.stride,
                               self.sub_octaves)

    def flops_per_frame(self) -> float:
        # The row's read, then the window: (2 partials) per-frame sines and cosines times (2
        # partials, kernel_size) per-sample ones.
        return 2.0 * self.channels * self.partials + 2.0 * 2 * self.partials * self.kernel_size


class NoiseHead(Head):
    """Noise in ``bands`` mel bands from 0 Hz to Nyquist, their levels per frame read from the row
    (:func:`~sing_ray.models.noise.noise_windows`: fixed random phases per note frame, so a note
    renders the same whatever the batch or window). Not in the paper.

    With learnt frames a level is the softplus of what the row reads (the bias starts at
    :data:`NOISE_BIAS`, under the partials). With harmonic frames the levels are the frames'
    last ``bands`` values (the log levels the harmonic encoder measures beside the partials),
    times what the row reads (weights starting at zero), less the encoder's floor, divided by
    :data:`~sing_ray.models.noise.NOISE_GAIN` so that the noise reads back the level it was
    given. Parameters: ``weight`` (bands, channels, 1), ``bias`` (bands,).

    Args:
        normed: as :class:`PartialsHead`'s (harmonic frames have no transposed conv: always).
        scale: where the harmonic frames' levels lie: "mel", the bands it plays; "pitch", bands
            at fixed multiples of the note's f0, moved to the mel bands (corrections included)
            before they play (:func:`~sing_ray.models.noise.pitch_to_mel_bands`).
    """

    def __init__(self, channels: int, bands: int, kernel_size: int = 1024, harmonic: bool = False,
                 normed: bool = False, scale: str = "mel"):
        super().__init__()
        self.scale = scale
        self.weight, self.bias = pointwise_parameters(channels, bands)
        nn.init.constant_(self.bias, NOISE_BIAS)
        if harmonic:
            nn.init.zeros_(self.weight)
            nn.init.zeros_(self.bias)
        self.channels, self.bands, self.kernel_size = channels, bands, kernel_size
        self.harmonic, self.normed = harmonic, normed
        self.frame_values = bands if harmonic else 0
        self.register_buffer("phases", noise_phases(kernel_size, NOISE_TABLE_FRAMES, NOISE_SEED), persistent=False)
        self.register_buffer("bands_to_bins", mel_band_matrix(bands, kernel_size // 2 + 1), persistent=False)

    def gemm_weights(self, cast) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight (bands, channels), bias (bands,))``, pre-softplus."""
        return cast(self.weight.squeeze(-1)), cast(self.bias)

    def levels(self, hidden: torch.Tensor, weights: tuple[torch.Tensor, ...],
               values: torch.Tensor | None = None, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n, channels) rows (and (B, n, bands) harmonic frame values; the (B,) MIDI pitches
        with ``scale="pitch"``) -> (B, n, bands) non-negative float32 levels of the mel bands."""
        out = _read(hidden, *weights, self.normed)
        if values is None:
            return F.softplus(out)
        log_levels = out + HARMONIC_SCALE * values.float()
        if self.scale == "pitch":
            if pitch is None:
                raise ValueError("this noise head reads its levels at multiples of f0: pass the notes' MIDI pitches")
            log_levels = pitch_to_mel_bands(log_levels, pitch)
        # As _harmonic's; what the encoder calls silence plays nothing (its floor is its log's offset).
        levels = torch.exp(log_levels.clamp(max=HARMONIC_MAX_LOG))
        return (levels - ANALYSIS_FLOOR).clamp(min=0) / NOISE_GAIN

    def forward(self, hidden: torch.Tensor, weights: tuple[torch.Tensor, ...], rows: Rows) -> torch.Tensor:
        return noise_windows(self.levels(hidden, weights, rows.values, rows.pitch), rows.first_frame, self.phases,
                             self.bands_to_bins, self.kernel_size)

    def flops_per_frame(self) -> float:
        # The row's read, the band levels spread over the FFT bins, and the inverse real FFT
        # (about 2.5 K log2 K for K points).
        bins = self.kernel_size // 2 + 1
        fft = 2.5 * self.kernel_size * math.log2(self.kernel_size)
        # With pitch bands, each row's levels are moved to the mel bands (a bands x bands product).
        moved = 2.0 * self.bands * self.bands if self.scale == "pitch" else 0.0
        return 2.0 * self.channels * self.bands + moved + 2.0 * self.bands * bins + fft


def build_heads(names, channels: int, kernel_size: int, stride: int, frames: str = "learnt",
                partials: int = 0, noise_bands: int = 0, sub_octaves: int = 0,
                noise_scale: str = "mel") -> dict[str, Head]:
    """The heads ``names`` (checked, in :data:`~sing_ray.config.HEADS` order), built in that order."""
    harmonic, normed = frames == "harmonic", "transposed_conv" not in names
    makers = {
        "transposed_conv": lambda: TransposedConvHead(channels, kernel_size, stride),
        "partials": lambda: PartialsHead(channels, partials, kernel_size, stride, sub_octaves, harmonic, normed),
        "noise": lambda: NoiseHead(channels, noise_bands, kernel_size, harmonic, normed, noise_scale),
    }
    return {name: makers[name]() for name in names}
