"""Filtered noise in mel bands, measured from a note and played back (DDSP's noise synth).

The note's partials at k x f0 leave out what lies between, under and above them: a bow's
or a breath's noise, a hammer's or a pick's thump, the spread of a vibrato, the partials of
a bar or a bell that are not multiples of f0, and everything above the last partial. The
encoder measures it, frame by frame, as the level of what the partials leave (the frame less
its partials, each re-made at its measured amplitude and phase) in ``N`` bands spaced evenly
on the mel scale from 0 Hz to Nyquist; the decoder plays noise of that spectral envelope
under the same windows as the partials. With harmonic frames the levels are part of the
frames, so the LSTM predicts the noise as it predicts the partials.

A level is an amplitude density: white noise of RMS ``s`` reads ``s`` in every band, and the
decoder plays noise that reads back the level it was given (:data:`NOISE_GAIN`).
"""
from __future__ import annotations

import math

import torch

from ..dsp import hann_window

# The squared periodic Hann windows of the decoder, 1,024 samples every 256, sum to 1.5.
HANN2_OVERLAP_SUM = 1.5


def mel(hz: torch.Tensor | float) -> torch.Tensor:
    """The mel scale (O'Shaughnessy's, as HTK): 2595 log10(1 + f / 700)."""
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(hz, dtype=torch.float64) / 700.0)


def mel_band_matrix(bands: int, bins: int, sample_rate: int = 16000) -> torch.Tensor:
    """(bands, bins) triangles centred on ``bands`` frequencies spaced evenly in mel from
    0 Hz to Nyquist: each FFT bin's level interpolated linearly between the two nearest
    centres, so that the rows sum to 1 at every bin (flat levels make a flat spectrum).
    ValueError when a band would get no bin (too many bands for the window)."""
    if bands < 2:
        raise ValueError(f"noise needs 2 bands or more, got {bands}")
    nyquist = sample_rate / 2
    centres_mel = torch.linspace(0.0, float(mel(nyquist)), bands, dtype=torch.float64)
    centres = 700.0 * (10.0 ** (centres_mel / 2595.0) - 1.0)                     # (bands,) Hz
    freqs = torch.linspace(0.0, nyquist, bins, dtype=torch.float64)              # (bins,)
    matrix = torch.zeros(bands, bins, dtype=torch.float64)
    upper = torch.searchsorted(centres, freqs, right=False).clamp(1, bands - 1)    # centre at or above
    lower = upper - 1
    w = ((freqs - centres[lower]) / (centres[upper] - centres[lower])).clamp(0.0, 1.0)
    columns = torch.arange(bins)
    matrix[lower, columns] = 1.0 - w
    matrix[upper, columns] += w
    empty = (matrix.sum(-1) == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"{bands} noise bands over {bins} FFT bins leave band(s) {empty[:4]} without a "
                         "bin: use fewer bands or a longer window")
    return matrix.float()


def noise_phases(kernel_size: int, frames: int, seed: int) -> torch.Tensor:
    """(frames, kernel_size // 2 + 1, 2): cos and sin of fixed random phases (0 at DC and Nyquist),
    one row per frame of the note, the same on every call: a note renders the same whatever
    the batch or window."""
    generator = torch.Generator().manual_seed(seed)
    phase = 2 * math.pi * torch.rand(frames, kernel_size // 2 + 1, generator=generator, dtype=torch.float64)
    phase[:, 0] = 0.0
    phase[:, -1] = 0.0
    return torch.stack([torch.cos(phase), torch.sin(phase)], dim=-1).float()


# A level l in every band makes noise whose frames read back NOISE_GAIN * l by
# :func:`residual_levels` (the geometric mean over frames, as the frames are log levels); the
# decoder divides by it, so that the noise it plays reads back what it was given. Measured on
# 300 frames of 32 bands (tests/test_noise.py checks it to 0.5 dB).
NOISE_GAIN = 0.676


def noise_windows(levels: torch.Tensor, first_frame: int | torch.Tensor, phases: torch.Tensor,
                  band_matrix: torch.Tensor, kernel_size: int = 1024) -> torch.Tensor:
    """Each frame's window of noise, to be overlap-added every ``kernel_size // 4`` samples.

    Frame ``j`` (note frame ``first_frame + j``) gets ``kernel_size`` samples of noise whose
    magnitude spectrum is its band levels interpolated over the FFT bins, with that note
    frame's fixed random phases, under the squared Hann window.

    Args:
        levels: (B, n, N) non-negative band levels, float32.
        first_frame: the note frame of ``levels[:, 0]`` (int, or (B,)).
        phases: :func:`noise_phases`; band_matrix: (N, bins).
    Returns:
        (B, n, kernel_size).
    """
    batch, count, _ = levels.shape
    device = levels.device
    first = torch.as_tensor(first_frame, device=device).long().reshape(-1, 1)
    rows = (first + torch.arange(count, device=device)) % phases.shape[0]         # (B or 1, n)
    rows = rows.expand(batch, count)
    magnitude = torch.matmul(levels.float(), band_matrix)                          # (B, n, bins)
    cos_sin = phases[rows]                                                         # (B, n, bins, 2)
    spectrum = torch.complex(magnitude * cos_sin[..., 0], magnitude * cos_sin[..., 1])
    window = hann_window(kernel_size, squared=True, device=device) / HANN2_OVERLAP_SUM
    with torch.autocast(device_type=device.type, enabled=False):
        return torch.fft.irfft(spectrum, n=kernel_size) * (math.sqrt(kernel_size) * window)


def residual_levels(frames: torch.Tensor, remade: torch.Tensor | None, band_matrix: torch.Tensor) -> torch.Tensor:
    """The level of what a note's frames hold beside their partials, in each band.

    Args:
        frames: (B, n, K) the note's frames (samples ``[j * stride, j * stride + K)``).
        remade: (B, n, K) the partials re-made in each frame at their measured amplitudes and
            phases, or None (no partials: the frame's whole level).
        band_matrix: (N, bins) :func:`mel_band_matrix`.
    Returns:
        (B, N, n) levels (an amplitude density: white noise of RMS ``s`` reads ``s``), float32.
    """
    kernel = frames.shape[-1]
    residual = frames.float() if remade is None else frames.float() - remade.float()
    window = hann_window(kernel, squared=True, device=frames.device)
    with torch.autocast(device_type=frames.device.type, enabled=False):
        power = torch.fft.rfft(residual * window, dim=-1).abs().square()        # (B, n, bins)
    # White noise of variance s^2 has E|X|^2 = s^2 * sum(window^2) in every bin.
    power = power / window.square().sum()
    weights = band_matrix / band_matrix.sum(-1, keepdim=True)                    # (N, bins), rows sum to 1
    return torch.sqrt(torch.matmul(power, weights.T) + 1e-20).transpose(1, 2)


# model.noise_scale="pitch": the harmonic frames hold the noise's levels on bands at these
# multiples of the note's f0, spaced evenly in log frequency: from two octaves under f0 (a
# pick's or a hammer's thump under a bass note) to what 8 kHz is for the lowest piano key.
PITCH_BANDS_LOW, PITCH_BANDS_HIGH = 0.25, 300.0


def noise_scale_kwargs(noise_scale: str) -> dict:
    """``noise_scale`` as a model's ``kwargs`` record it: nothing for "mel", so that the models
    and checkpoints from before the option compare and load as they did."""
    return {} if noise_scale == "mel" else {"noise_scale": noise_scale}


def band_centres(bands: int, sample_rate: int = 16000) -> torch.Tensor:
    """(bands,) the mel bands' centre frequencies in Hz, float64 (those of :func:`mel_band_matrix`)."""
    centres_mel = torch.linspace(0.0, float(mel(sample_rate / 2)), bands, dtype=torch.float64)
    return 700.0 * (10.0 ** (centres_mel / 2595.0) - 1.0)


def _interpolation(x: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """(B, M) points and (B, K) ascending knots -> (B, M, K): the weights that interpolate
    values at the knots linearly at the points (the end values beyond the ends)."""
    k = knots.shape[-1]
    upper = torch.searchsorted(knots.contiguous(), x.contiguous()).clamp(1, k - 1)
    lo, hi = torch.gather(knots, 1, upper - 1), torch.gather(knots, 1, upper)
    w = ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
    out = torch.zeros(*x.shape, k, dtype=x.dtype, device=x.device)
    out.scatter_(2, (upper - 1).unsqueeze(-1), (1.0 - w).unsqueeze(-1))
    out.scatter_add_(2, upper.unsqueeze(-1), w.unsqueeze(-1))
    return out


def _log_axes(bands: int, pitch: torch.Tensor, sample_rate: int):
    """(f0 (B, 1), the pitch bands' multiples of f0 (bands,), the mel bands' centres (bands,))
    in Hz, float64; the 0 Hz centre is taken as 1 Hz so that it has a logarithm."""
    f0 = 440.0 * 2.0 ** ((pitch.detach().double().reshape(-1, 1) - 69.0) / 12.0)
    multiples = torch.logspace(math.log10(PITCH_BANDS_LOW), math.log10(PITCH_BANDS_HIGH), bands,
                               dtype=torch.float64, device=pitch.device)
    return f0, multiples, band_centres(bands, sample_rate).to(pitch.device).clamp(min=1.0)


def mel_to_pitch_bands(log_levels: torch.Tensor, pitch: torch.Tensor, sample_rate: int = 16000) -> torch.Tensor:
    """The noise's log levels moved from the mel bands to the pitch bands.

    Each pitch band's value is the mel bands' interpolated linearly in log frequency at its
    frequency. A pitch band above Nyquist holds the level at Nyquist (the top mel band's), so
    that the mel bands between the last pitch band under Nyquist and Nyquist come back whole
    (:func:`pitch_to_mel_bands`); nothing plays it.

    Args:
        log_levels: (B, N, n) log levels of N mel bands (:func:`residual_levels`'s, logged).
        pitch: (B,) MIDI pitches.
    Returns:
        (B, N, n) on N pitch bands (:data:`PITCH_BANDS_LOW` to :data:`PITCH_BANDS_HIGH` x f0).
    """
    bands = log_levels.shape[1]
    f0, multiples, centres = _log_axes(bands, pitch, sample_rate)
    freqs = multiples.unsqueeze(0) * f0                                                # (B, N)
    weights = _interpolation(freqs.log(), centres.log().expand(freqs.shape[0], -1))   # (B, N pitch, N mel)
    return torch.matmul(weights.to(log_levels.dtype), log_levels)


def pitch_to_mel_bands(log_levels: torch.Tensor, pitch: torch.Tensor, sample_rate: int = 16000) -> torch.Tensor:
    """The inverse way: (B, n, N) log levels of the pitch bands, rows last -> (B, n, N) of the
    mel bands, each interpolated linearly in log frequency (the lowest pitch band's value under
    it, the highest's above it)."""
    bands = log_levels.shape[-1]
    f0, multiples, centres = _log_axes(bands, pitch, sample_rate)
    ratio = centres.unsqueeze(0) / f0                                                  # (B, N mel)
    weights = _interpolation(ratio.log(), multiples.log().expand(ratio.shape[0], -1))  # (B, N mel, N pitch)
    return torch.matmul(log_levels, weights.transpose(1, 2).to(log_levels.dtype))
