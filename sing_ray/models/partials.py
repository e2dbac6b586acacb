"""The note's partials: where they are, how loud each is in a frame, and their windows of sound.

Not in the paper. Partial ``k`` of a note is the sine at ``k * f0 / 2**sub_octaves`` (f0 from the
MIDI pitch; ``sub_octaves`` S > 0 adds the partials under the pitch that an organ's 16-foot stop
sounds, docs/quality-diary.md, section 13). The decoder's partials head plays them
(:func:`partial_windows`), the harmonic encoder measures them (:func:`partial_magnitudes`, its
adjoint); with harmonic frames a frame value ``v`` is amplitude ``exp(HARMONIC_SCALE * v)``.
Pure functions, no weights.
"""
from __future__ import annotations

import functools
import math

import torch

from ..dsp import hann_window
from .noise import HANN2_OVERLAP_SUM
from .sequence import SAMPLE_RATE, midi_hz

# Starting level of every partial's amplitude, softplus(-5) = 0.0067: 16 partials of that size
# sum to about -33 dBFS RMS, the level of the SoundFont datasets' notes.
PARTIAL_BIAS = -5.0
# Floor of the encoder's log partial magnitudes: -100 dBFS, under a 16-bit step.
ANALYSIS_FLOOR = 1e-5
# With harmonic frames, frame value v of partial k means amplitude exp(HARMONIC_SCALE * v):
# the log magnitudes over 4, about -2.9 (the floor) to 0, a range an LSTM's outputs reach.
HARMONIC_SCALE = 4.0
# ... and a learnt correction can raise a log amplitude to at most this (amplitude 2.7).
HARMONIC_MAX_LOG = 1.0
# Ridge of the least-squares measurement of partials closer than the window resolves, as a
# share of a lone sine's own weight: it keeps the solve stable where two partials are nearly
# the same sine (low notes) and changes a well-separated partial's reading by 0.1 %.
LEAST_SQUARES_RIDGE = 1e-3


def partial_rates(pitch: torch.Tensor, partials: int, sub_octaves: int = 0) -> torch.Tensor:
    """(B, H) the frequency of each note's partial ``k`` = 1..H, ``k * f0 / 2**sub_octaves``
    (f0 from the MIDI pitch), in cycles per sample, float64."""
    f0 = midi_hz(pitch) / 2 ** sub_octaves
    k = torch.arange(1, partials + 1, dtype=torch.float64, device=pitch.device)
    return f0[:, None] * k[None, :] / SAMPLE_RATE


def partial_windows(amplitudes: torch.Tensor, pitch: torch.Tensor, first_sample: int | float | torch.Tensor,
                    kernel_size: int = 1024, stride: int = 256, sub_octaves: int = 0) -> torch.Tensor:
    """Each frame's window of the note's first H partials, to be overlap-added like the decoder's.

    Frame ``j``'s window covers samples ``first_sample + j * stride`` onward for ``kernel_size``
    samples; in it partial ``k`` (``k * f0 / 2**sub_octaves``, f0 from the MIDI pitch) has amplitude
    ``amplitudes[:, j, k - 1]`` and a phase that runs on from sample 0 of the padded note, so
    overlapping windows agree and the overlap-add is a sum of sines whose amplitudes glide
    from frame to frame. Partials at or above the Nyquist frequency are left out.

    The window is one GEMM per note: ``sin(a + b) = sin a cos b + cos a sin b`` splits each
    sine into a per-frame part (B, n, 2H) and a per-sample part (B, 2H, kernel_size).

    Args:
        amplitudes: (B, n, H) non-negative, float32.
        pitch: (B,) MIDI pitches.
        first_sample: where frame 0's window starts (int, float or (B,)), in samples from the
            padded note's start.
    Returns:
        (B, n, kernel_size).
    """
    batch, count, partials = amplitudes.shape
    device = amplitudes.device
    rate = partial_rates(pitch.to(device), partials, sub_octaves)                   # (B, H) cycles/sample
    first = torch.as_tensor(first_sample, dtype=torch.float64, device=device).reshape(-1, 1)
    starts = first + stride * torch.arange(count, dtype=torch.float64, device=device)           # (B or 1, n)
    at_start = 2 * math.pi * ((rate[:, None, :] * starts[:, :, None]) % 1.0)          # (B, n, H)
    within = 2 * math.pi * ((rate[:, :, None] * torch.arange(kernel_size, dtype=torch.float64, device=device)) % 1.0)
    amplitudes = amplitudes * (rate < 0.5).to(amplitudes.dtype)[:, None, :]
    per_frame = torch.cat([amplitudes * torch.sin(at_start).to(amplitudes.dtype),
                           amplitudes * torch.cos(at_start).to(amplitudes.dtype)], dim=-1)
    window = hann_window(kernel_size, squared=True, device=device, dtype=amplitudes.dtype) / HANN2_OVERLAP_SUM
    per_sample = torch.cat([torch.cos(within), torch.sin(within)], dim=1).to(amplitudes.dtype) * window
    # In float32 under autocast too: the sines' phases are the pitch, and bfloat16 would blur them.
    with torch.autocast(device_type=device.type, enabled=False):
        return torch.bmm(per_frame.float(), per_sample.float())


def partial_magnitudes(wav: torch.Tensor, pitch: torch.Tensor, partials: int, kernel_size: int = 1024,
                       stride: int = 256, sub_octaves: int = 0, remade: bool = False):
    """The amplitude of each of the note's first ``partials`` partials in each frame.

    Frame ``j`` is samples ``[j * stride, j * stride + kernel_size)`` under the squared Hann
    window; partial ``k`` (``k * f0 / 2**sub_octaves``, f0 from the MIDI pitch) is measured by
    correlating the frame with a cosine and a sine at its frequency, scaled so that a steady
    sine of amplitude ``a`` there reads ``a``. Partials at or above Nyquist read 0.

    With ``sub_octaves`` > 0 the partials of a low note lie closer than the window's main lobe
    (about 47 Hz either side), and a correlation would read a partial's neighbours as loud as
    itself. They are then measured together, by a weighted least-squares fit of all the
    cosines and sines to the frame (window weights, ridge :data:`LEAST_SQUARES_RIDGE`): a
    sine on one partial reads ``a`` there and about 0 on the others.

    Args:
        wav: (B, T), T = kernel_size + a multiple of stride.
        pitch: (B,) MIDI pitches.
        remade: also return the frames and the partials re-made in each frame at their
            measured amplitudes and phases (what :func:`~sing_ray.models.noise.residual_levels`
            takes away).
    Returns:
        (B, partials, frames), float32; with ``remade``, also the frames and the partials
        re-made in them, (B, frames, kernel_size) each.
    """
    device = wav.device
    frames = wav.float().unfold(-1, kernel_size, stride)                               # (B, n, K)
    rate = partial_rates(pitch.to(device), partials, sub_octaves)                     # (B, H)
    keep = (rate < 0.5).to(torch.float64)                                               # (B, H)
    t = torch.arange(kernel_size, dtype=torch.float64, device=device)
    phase = 2 * math.pi * ((rate[:, :, None] * t) % 1.0)                               # (B, H, K)
    sinusoids = torch.cat([torch.cos(phase), torch.sin(phase)], dim=1) * keep.repeat(1, 2)[:, :, None]
    if sub_octaves:
        basis = torch.stack([_least_squares_analysis(float(p), partials, sub_octaves, kernel_size)
                             for p in pitch.tolist()]).to(device)                      # (B, 2H, K)
    else:
        window = hann_window(kernel_size, squared=True, device=device, dtype=torch.float64)
        scale = 2 / window.sum()
        basis = (sinusoids * window * scale).float()                                   # (B, 2H, K)
    with torch.autocast(device_type=device.type, enabled=False):
        projection = torch.bmm(frames, basis.transpose(1, 2))                            # (B, n, 2H)
    magnitude = torch.sqrt(projection[..., :partials] ** 2 + projection[..., partials:] ** 2 + 1e-20)
    magnitude = (magnitude * keep.float()[:, None, :]).transpose(1, 2)
    if not remade:
        return magnitude
    with torch.autocast(device_type=device.type, enabled=False):
        again = torch.bmm(projection, sinusoids.float())                                  # (B, n, K)
    return magnitude, frames, again


@functools.lru_cache(maxsize=512)
def _least_squares_analysis(pitch: float, partials: int, sub_octaves: int, kernel_size: int) -> torch.Tensor:
    """(2H, K) float32 rows that, correlated with a frame, give the weighted least-squares fit
    of the note's partials' cosines and sines to it (:func:`partial_magnitudes`); the rows of
    partials at or above Nyquist are 0. It depends on the pitch alone: computed once per pitch."""
    rate = partial_rates(torch.tensor([pitch], dtype=torch.float64), partials, sub_octaves)[0]   # (H,)
    keep = (rate < 0.5).to(torch.float64).repeat(2)                                    # (2H,)
    t = torch.arange(kernel_size, dtype=torch.float64)
    phase = 2 * math.pi * ((rate[:, None] * t) % 1.0)
    sinusoids = torch.cat([torch.cos(phase), torch.sin(phase)]) * keep[:, None]        # (2H, K)
    window = hann_window(kernel_size, squared=True, dtype=torch.float64)
    weighted = sinusoids * window
    # The normal equations of the weighted fit (a lone sine's own weight is window.sum() / 2);
    # the rows left out become the identity.
    ridge = LEAST_SQUARES_RIDGE * float(window.sum()) / 2
    gram = weighted @ sinusoids.T + torch.diag(ridge + (1 - keep))
    return torch.linalg.solve(gram, weighted).float()
