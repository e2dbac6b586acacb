"""SING's convolutional encoder and decoder, and the autoencoder of phase 1.

The decoder turns 128-d frames at 62.5 Hz into a waveform: a context conv, a
few 1x1 "rewrite" convs, then a transposed conv whose 1024-sample kernel,
smoothed by a squared Hann window, is overlap-added every 256 samples. The
encoder mirrors it. Length arithmetic (frames <-> samples) lives on the decoder.

Optionally (``clock_harmonics`` K > 0, not in the paper) the decoder also reads, beside
every frame, the cos and sin of where the note's first K partials are in their cycles
(:func:`~sing_ray.models.sequence.phase_clock`, from the MIDI pitch). A window every 256
samples can only make multiples of 62.5 Hz from frames that stay the same; with the clock
the decoder turns the partials itself, so the frames the LSTM has to predict need not
(docs/quality.md, "Why the model made no notes").

Optionally (``partials`` H > 0, not in the paper) the decoder also emits, per frame, the
amplitudes of the note's first H partials at exactly the MIDI pitch; each frame's window then
adds those sines to what the transposed conv writes (:func:`partial_windows`). The frames
carry how loud each partial is, not where it is in its cycle, and the sines are in tune by
construction; the transposed conv, zero at the start, learns what the partials miss.

Optionally (``noise_bands`` N > 0, not in the paper) the decoder also emits, per frame, the
level of N bands of noise spread evenly from 0 Hz to Nyquist; each frame's window adds noise
of that spectral envelope (:func:`noise_windows`): what a bow, a breath, a distorted amp or
detuned reeds put between the partials, which the partials cannot.

Optionally (``sub_octaves`` S > 0, not in the paper) the partials of both are at multiples of
f0 / 2^S rather than of f0: S = 1 adds the half-multiples, which an organ's 16-foot stop
(and 5 1/3-foot) sounds an octave under the MIDI pitch and which no multiple of f0 can play
(docs/quality.md, section 13). The encoder then measures them by least squares
(:func:`partial_magnitudes`), since for low notes they lie closer than its window resolves.

Optionally (``analysis_partials`` A > 0, not in the paper) the encoder reads, in place of its
learnt windowed conv, the magnitudes of the note's first A partials at the MIDI pitch in
each frame (:func:`partial_magnitudes`, the adjoint of the decoder's partials): the frames it
writes then follow each partial's level, whatever the pitch, and the pitch is an argument of
:meth:`Autoencoder.encode`.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..dsp import hann_window, pad_wav, unpad_wav
from .noise import HANN2_OVERLAP_SUM as _HANN2_OVERLAP_SUM
from .noise import NOISE_GAIN, mel_band_matrix, noise_phases, noise_windows, residual_levels
from .sequence import SAMPLE_RATE, midi_hz, options_when_on, phase_clock

# Starting level of every partial's amplitude, softplus(-5) = 0.0067: 16 partials of that size
# sum to about -33 dBFS RMS, the level of the SoundFont datasets' notes.
PARTIAL_BIAS = -5.0
# Starting level of every noise band, softplus(-7) = 0.0009: noise at about -63 dBFS RMS,
# under the partials' start, so that the loss raises it only where the data has noise.
NOISE_BIAS = -7.0
# The noise's random phases: one row per frame of the note (its 265 frames at the paper's
# sizes fit), the same on every call, so a note renders the same whatever the batch or window.
NOISE_TABLE_FRAMES = 512
NOISE_SEED = 20181203


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
    window = hann_window(kernel_size, squared=True, device=device, dtype=amplitudes.dtype) / _HANN2_OVERLAP_SUM
    per_sample = torch.cat([torch.cos(within), torch.sin(within)], dim=1).to(amplitudes.dtype) * window
    # In float32 under autocast too: the sines' phases are the pitch, and bfloat16 would blur them.
    with torch.autocast(device_type=device.type, enabled=False):
        return torch.bmm(per_frame.float(), per_sample.float())


# Floor of the encoder's log partial magnitudes: -100 dBFS, under a 16-bit step.
ANALYSIS_FLOOR = 1e-5
# With ``harmonic_frames``, frame value v of partial k means amplitude exp(HARMONIC_SCALE * v):
# the log magnitudes over 4, about -2.9 (the floor) to 0, a range an LSTM's outputs reach.
HARMONIC_SCALE = 4.0
# ... and a learnt correction can raise a log amplitude to at most this (amplitude 2.7).
HARMONIC_MAX_LOG = 1.0


# Ridge of the least-squares measurement of partials closer than the window resolves, as a
# share of a lone sine's own weight: it keeps the solve stable where two partials are nearly
# the same sine (low notes) and changes a well-separated partial's reading by 0.1 %.
LEAST_SQUARES_RIDGE = 1e-3


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


class DecoderGemmWeights(NamedTuple):
    """The decoder's weights laid out for :meth:`ConvolutionalDecoder.synthesize` (frames-last GEMMs).

    Attributes:
        context: (channels, dimension * context_size) the first conv, rows flattened as (channel, tap).
        context_bias: (channels,).
        rewrite: ``((channels, channels) weight, (channels,) bias)`` per 1x1 conv.
        synthesis: (channels, kernel_size) the transposed conv's kernel, window applied; None
            for a decoder of partials alone.
        synthesis_bias: (1,), or None as ``synthesis``.
        partials, partials_bias: (H, channels) and (H,) the partials' amplitudes (pre-softplus),
            for a decoder with partials; else None.
        noise, noise_bias: (N, channels) and (N,) the noise bands' levels (pre-softplus), for a
            decoder with noise; else None.
    """

    context: torch.Tensor
    context_bias: torch.Tensor
    rewrite: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    synthesis: torch.Tensor | None
    synthesis_bias: torch.Tensor | None
    partials: torch.Tensor | None = None
    partials_bias: torch.Tensor | None = None
    noise: torch.Tensor | None = None
    noise_bias: torch.Tensor | None = None


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
        clock_harmonics: K > 0 adds the phase clock of the note's first K partials (2 K inputs
            per frame beside the D of the frame); the pitch is then an argument of every call.
        partials: H > 0 adds the note's first H partials at the MIDI pitch, their amplitudes
            per frame read from the last hidden layer (:func:`partial_windows`); the
            transposed conv then starts at zero. The pitch is an argument of every call.
        conv_synthesis: False leaves out the transposed conv: the waveform is the partials
            alone (needs ``partials``). Without it there is no buzz at multiples of the frame
            rate, 62.5 Hz, which the spectral loss leaves at about -55 dBFS, and no 1,024-wide
            GEMM per frame. The amplitudes then read the hidden layer layer-normed over its
            channels: nothing else bounds its scale, and without the norm the spectral loss
            drives it up until every amplitude underflows to exact silence (within 50 steps).
        noise_bands: N > 0 adds noise in N bands spaced evenly in mel from 0 Hz to Nyquist
            (:func:`~sing_ray.models.noise.noise_windows`); N must then be 2 or more. Their
            levels per frame are read from the last hidden layer as the partials' amplitudes
            are; with ``harmonic_frames`` they are the frames' last N values (the log levels
            an encoder with the same options measures), times what the layers read.
        harmonic_frames: with ``partials`` (plus ``noise_bands``) equal to ``dimension`` and no
            transposed conv:
            partial k's amplitude in a frame is ``exp(HARMONIC_SCALE * frame[k])`` times what
            the layers read from the hidden layer (their output starts at zero, a factor 1),
            so the frames an encoder with the same option writes play back as the note.
        sub_octaves: S > 0 puts the partials at multiples of f0 / 2^S (:func:`partial_windows`);
            with ``harmonic_frames`` a partial then plays its frame's amplitude less the
            encoder's floor (:data:`ANALYSIS_FLOOR`), so that silence plays as silence.
    """

    def __init__(self, dimension: int = 128, channels: int = 4096, kernel_size: int = 1024,
                 stride: int = 256, context_size: int = 9, rewrite_layers: int = 2, clock_harmonics: int = 0,
                 partials: int = 0, conv_synthesis: bool = True, noise_bands: int = 0,
                 harmonic_frames: bool = False, sub_octaves: int = 0):
        super().__init__()
        if not (conv_synthesis or partials):
            raise ValueError("a decoder without its transposed conv needs partials > 0")
        if harmonic_frames and (partials + noise_bands != dimension or conv_synthesis):
            raise ValueError(f"harmonic frames need partials ({partials}) plus noise_bands ({noise_bands}) "
                             f"equal to dimension ({dimension}) and no transposed conv")
        if noise_bands == 1 or noise_bands < 0:
            raise ValueError(f"noise_bands {noise_bands}: expected 0 (no noise) or 2 or more")
        if sub_octaves < 0 or (sub_octaves and not partials):
            raise ValueError(f"sub_octaves {sub_octaves}: expected 0, or more with partials > 0")
        self.kwargs = dict(dimension=dimension, channels=channels, kernel_size=kernel_size, stride=stride,
                           context_size=context_size, rewrite_layers=rewrite_layers, clock_harmonics=clock_harmonics,
                           partials=partials, conv_synthesis=conv_synthesis)
        self.kwargs.update(options_when_on(noise_bands=noise_bands, harmonic_frames=harmonic_frames,
                                           sub_octaves=sub_octaves))
        self.harmonic_frames = harmonic_frames
        self.sub_octaves = sub_octaves
        self.kernel_size, self.stride = kernel_size, stride
        self.clock_harmonics = clock_harmonics
        self.body = nn.Sequential(
            nn.Conv1d(dimension + 2 * clock_harmonics, channels, context_size, padding=context_size // 2), nn.ReLU(),
            *_rewrite(channels, rewrite_layers))
        self.synthesis = WindowedConvTranspose1d(channels, 1, kernel_size, stride) if conv_synthesis else None
        self.partials = partials
        if partials:
            self.amplitudes = nn.Conv1d(channels, partials, 1)
            nn.init.constant_(self.amplitudes.bias, PARTIAL_BIAS)
            if harmonic_frames:
                nn.init.zeros_(self.amplitudes.weight)
                nn.init.zeros_(self.amplitudes.bias)
            if self.synthesis is not None:
                nn.init.zeros_(self.synthesis.weight)
        self.noise_bands = noise_bands
        if noise_bands:
            self.noise = nn.Conv1d(channels, noise_bands, 1)
            nn.init.constant_(self.noise.bias, NOISE_BIAS)
            if harmonic_frames:
                nn.init.zeros_(self.noise.weight)
                nn.init.zeros_(self.noise.bias)
            self.register_buffer("noise_phases", noise_phases(kernel_size, NOISE_TABLE_FRAMES, NOISE_SEED),
                                 persistent=False)
            self.register_buffer("noise_bands_to_bins", mel_band_matrix(noise_bands, kernel_size // 2 + 1),
                                 persistent=False)

    def _noise(self, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
               first_frame: int | torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n, channels) hidden rows -> (B, n, kernel_size) windows of noise; with ``frames``
        (B, n, N), the harmonic frames' log noise levels the layers correct."""
        if frames is None:
            levels = self._amplitudes(hidden, weight, bias)
        else:
            out = F.linear(F.layer_norm(hidden.float(), (hidden.shape[-1],)), weight.float(), bias.float())
            levels = torch.exp((out + HARMONIC_SCALE * frames.float()).clamp(max=HARMONIC_MAX_LOG))
            # What the encoder calls silence plays nothing (its floor is its log's offset).
            levels = (levels - ANALYSIS_FLOOR).clamp(min=0) / NOISE_GAIN
        return noise_windows(levels, first_frame, self.noise_phases, self.noise_bands_to_bins, self.kernel_size)

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

    def with_clock(self, frames: torch.Tensor, pitch: torch.Tensor | None,
                   start: int | float | torch.Tensor = 0) -> torch.Tensor:
        """(B, L, D) frames -> (B, L, D + 2 K): each frame beside the phase clock at its time.

        ``start``: the note frame of ``frames[:, 0]`` (fractional and per note for a window cut
        at any sample). Unchanged when the decoder has no clock.
        """
        if not self.clock_harmonics:
            return frames
        if pitch is None:
            raise ValueError("this decoder reads the phase clock: pass the notes' MIDI pitches")
        clock = phase_clock(pitch, start, frames.shape[1], self.clock_harmonics, self.stride / SAMPLE_RATE)
        return torch.cat([frames, clock.to(device=frames.device, dtype=frames.dtype)], dim=-1)

    def forward(self, embedding: torch.Tensor, pitch: torch.Tensor | None = None,
                start: int | float | torch.Tensor = 0) -> torch.Tensor:
        """Args: embedding (B, D, L); pitch (B,) MIDI (with a clock); start: the note frame of
        ``embedding[..., 0]``. Returns: (B, wav_length(L))."""
        frames = embedding.transpose(1, 2)
        embedding = self.with_clock(frames, pitch, start).transpose(1, 2)
        hidden = self.body(embedding)
        wav = 0.0 if self.synthesis is None else self.synthesis(hidden).squeeze(1)
        if self.partials:
            if pitch is None:
                raise ValueError("this decoder plays the note's partials: pass the notes' MIDI pitches")
            amplitudes = self._amplitudes(hidden.transpose(1, 2), self.amplitudes.weight.squeeze(-1),
                                          self.amplitudes.bias,
                                          frames[..., :self.partials] if self.harmonic_frames else None)
            first = torch.as_tensor(start, dtype=torch.float64) * self.stride
            wav = wav + self._overlap_add(partial_windows(amplitudes, pitch, first, self.kernel_size, self.stride,
                                                          self.sub_octaves))
        if self.noise_bands:
            first_frame = torch.floor(torch.as_tensor(start, dtype=torch.float64))
            wav = wav + self._overlap_add(self._noise(hidden.transpose(1, 2), self.noise.weight.squeeze(-1),
                                                      self.noise.bias, first_frame,
                                                      frames[..., self.partials:] if self.harmonic_frames else None))
        return wav

    def gemm_weights(self, dtype: torch.dtype | None = None) -> DecoderGemmWeights:
        """The weights as :meth:`synthesize` wants them, optionally cast (e.g. to bfloat16).

        Computed from the live parameters (differentiable unless ``dtype`` casts); an
        inference caller computes them once and reuses them, so the window product
        and the cast are not paid on every batch.
        """
        convs = [m for m in self.body if isinstance(m, nn.Conv1d)]
        context, rewrites = convs[0], convs[1:]

        def cast(t: torch.Tensor) -> torch.Tensor:
            return t if dtype is None else t.to(dtype).contiguous()

        return DecoderGemmWeights(
            context=cast(context.weight.reshape(context.out_channels, -1)),
            context_bias=cast(context.bias),
            rewrite=tuple((cast(m.weight.squeeze(-1)), cast(m.bias)) for m in rewrites),
            synthesis=None if self.synthesis is None else cast((self.synthesis.weight * self.synthesis.window).squeeze(1)),
            synthesis_bias=None if self.synthesis is None else cast(self.synthesis.bias),
            partials=cast(self.amplitudes.weight.squeeze(-1)) if self.partials else None,
            partials_bias=cast(self.amplitudes.bias) if self.partials else None,
            noise=cast(self.noise.weight.squeeze(-1)) if self.noise_bands else None,
            noise_bias=cast(self.noise.bias) if self.noise_bands else None)

    def _amplitudes(self, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                    frames: torch.Tensor | None = None) -> torch.Tensor:
        """(..., channels) hidden rows -> (..., partials) non-negative float32 amplitudes; with
        ``frames`` (..., partials), the harmonic frames' log amplitudes the layers correct."""
        if self.synthesis is None:
            hidden = F.layer_norm(hidden.float(), (hidden.shape[-1],))
            weight, bias = weight.float(), bias.float()
        out = F.linear(hidden, weight, bias).float()
        if frames is None:
            return F.softplus(out)
        amplitudes = torch.exp((out + HARMONIC_SCALE * frames.float()).clamp(max=HARMONIC_MAX_LOG))
        if self.sub_octaves:
            # The encoder's frames are log(magnitude + ANALYSIS_FLOOR): take the floor off, so
            # that a partial the frames call silent plays nothing. Left at the floor, the
            # partials under the pitch would fill a decayed note's tail at -120 dBFS with a
            # sub-octave the pitch tracker follows (docs/quality.md, section 13).
            amplitudes = (amplitudes - ANALYSIS_FLOOR).clamp(min=0)
        return amplitudes

    def needed_frames(self, start: int, stop: int, num_frames: int) -> tuple[int, int]:
        """The frames ``[first, last]`` whose synthesis windows reach samples ``[start, stop)``.

        Frame ``j`` writes samples ``[j * stride, j * stride + kernel_size)``.
        """
        first = max(0, (start - self.kernel_size) // self.stride + 1)
        last = min(num_frames - 1, (stop - 1) // self.stride)
        return first, last

    def synthesize(self, frames: torch.Tensor, start: int = 0, stop: int | None = None,
                   num_frames: int | None = None, weights: DecoderGemmWeights | None = None,
                   pitch: torch.Tensor | None = None) -> torch.Tensor:
        """Samples ``[start, stop)`` of what :meth:`forward` gives, as frames-last GEMMs.

        The same function as ``forward(frames.transpose(1, 2))[:, start:stop]``, computed
        differently because inference on a CPU is GEMM-bound: every conv becomes one
        matrix product over all (batch, frame) rows without layout changes, the
        transposed conv becomes a GEMM followed by an overlap-add of its 1024-sample
        outputs, and frames whose windows only reach samples outside ``[start, stop)``
        (SING's padding) are never computed. Differentiable, so training can use it.

        Args:
            frames: (B, L, D) frames in time-major order (the LSTM's natural layout); a
                prefix of the note's frames is enough when it reaches every frame needed.
            start, stop: the sample range wanted (default: all of ``wav_length(num_frames)``).
            num_frames: frames of the whole note (default ``L``); beyond it the context conv
                sees zeros, as the "same"-padded conv of :meth:`forward` does.
            weights: from :meth:`gemm_weights` (default: computed now from the parameters).
            pitch: (B,) MIDI pitches, for a decoder with a phase clock or partials.
        Returns:
            (B, stop - start) waveform, in the dtype of the products (float32 unless
            weights or autocast say otherwise).
        """
        w = self.gemm_weights() if weights is None else weights
        batch, length, dimension = frames.shape
        num_frames = length if num_frames is None else num_frames
        total = self.wav_length(num_frames)
        stop = total if stop is None else stop
        if not 0 <= start < stop <= total:
            raise ValueError(f"samples {start}..{stop} outside the {total} that {num_frames} frames make")
        first, last = self.needed_frames(start, stop, num_frames)
        half = self.kwargs["context_size"] // 2
        lo, hi = first - half, last + half + 1
        if min(hi, num_frames) > length:
            raise ValueError(f"frames up to {min(hi, num_frames) - 1} needed, only {length} given")
        x = self.with_clock(frames[:, max(lo, 0):min(hi, num_frames)], pitch, max(lo, 0))
        # The context conv is "same" padded: zeros before frame 0 and after the note's end.
        x = F.pad(x.to(w.context.dtype), (0, 0, max(-lo, 0), max(hi - num_frames, 0)))
        count = last - first + 1
        # (B, count, D, context) windows, flattened (channel, tap) like the conv's weight.
        cols = x.unfold(1, 2 * half + 1, 1).reshape(batch * count, -1)
        # In-place ReLUs: a linear layer's backward does not need its output, so this is
        # autograd-safe and saves a (B * frames, channels) copy per layer.
        h = F.relu(F.linear(cols, w.context, w.context_bias), inplace=True)
        for weight, bias in w.rewrite:
            h = F.relu(F.linear(h, weight, bias), inplace=True)
        # Each frame's contribution to the waveform: (B, count, kernel_size), summed in
        # float32 whatever the GEMM's dtype, so bfloat16 rounding is not compounded.
        pieces = 0.0 if w.synthesis is None else torch.matmul(h, w.synthesis).float().view(batch, count, -1)
        if self.partials:
            if pitch is None:
                raise ValueError("this decoder plays the note's partials: pass the notes' MIDI pitches")
            centre = (frames[:, first:last + 1, :self.partials].reshape(batch * count, -1)
                      if self.harmonic_frames else None)
            amplitudes = self._amplitudes(h, w.partials, w.partials_bias, centre).view(batch, count, -1)
            pieces = pieces + partial_windows(amplitudes, pitch, first * self.stride, self.kernel_size, self.stride,
                                              self.sub_octaves)
        if self.noise_bands:
            pieces = pieces + self._noise(h.view(batch, count, -1), w.noise, w.noise_bias, first,
                                          frames[:, first:last + 1, self.partials:] if self.harmonic_frames else None)
        wav = self._overlap_add(pieces)
        if w.synthesis_bias is not None:
            wav = wav + w.synthesis_bias.float()
        offset = first * self.stride
        return wav[:, start - offset:stop - offset]

    def _overlap_add(self, pieces: torch.Tensor) -> torch.Tensor:
        """(B, n, kernel_size) windows every ``stride`` samples -> (B, (n - 1) * stride + kernel_size)."""
        batch, count, kernel = pieces.shape
        if kernel % self.stride == 0:
            # kernel = r * stride: the output is r shifted copies of the frames' stride-long slices.
            r = kernel // self.stride
            parts = pieces.view(batch, count, r, self.stride)
            out = pieces.new_zeros(batch, count + r - 1, self.stride)
            for j in range(r):
                out[:, j:j + count] += parts[:, :, j]
            return out.view(batch, -1)
        length = (count - 1) * self.stride + kernel
        folded = F.fold(pieces.transpose(1, 2), output_size=(1, length), kernel_size=(1, kernel),
                        stride=(1, self.stride))
        return folded.view(batch, length)


class ConvolutionalEncoder(nn.Module):
    """Waveform to frames: the decoder's mirror (windowed strided conv, 1x1 convs, 1x1 to D).

    Args: as :class:`ConvolutionalDecoder`, and
        analysis_partials: A > 0 reads the log magnitudes of the note's first A partials per
            frame (:func:`partial_magnitudes`) in place of the windowed conv; the pitch is
            then an argument of every call.
        harmonic_frames: with ``analysis_partials`` (plus ``noise_bands``) equal to ``dimension``:
            each frame is those log magnitudes (and noise levels) over :data:`HARMONIC_SCALE`,
            plus what the layers add (their last starts at zero), so the frames start as the
            note's measured partials (and noise).
        sub_octaves: S > 0 measures the partials at multiples of f0 / 2^S (:func:`partial_magnitudes`).
        noise_bands: N > 0 (with ``analysis_partials``) also reads the log level of what each
            frame holds beside its partials, in N mel bands
            (:func:`~sing_ray.models.noise.residual_levels`).
    """

    def __init__(self, dimension: int = 128, channels: int = 4096, kernel_size: int = 1024,
                 stride: int = 256, rewrite_layers: int = 2, analysis_partials: int = 0,
                 harmonic_frames: bool = False, sub_octaves: int = 0, noise_bands: int = 0):
        super().__init__()
        if harmonic_frames and analysis_partials + noise_bands != dimension:
            raise ValueError(f"harmonic frames need analysis_partials ({analysis_partials}) plus noise_bands "
                             f"({noise_bands}) equal to dimension ({dimension})")
        if noise_bands and not analysis_partials:
            raise ValueError(f"an encoder measures noise_bands ({noise_bands}) beside its partials: "
                             "set analysis_partials > 0")
        self.kwargs = dict(dimension=dimension, channels=channels, kernel_size=kernel_size, stride=stride,
                           rewrite_layers=rewrite_layers)
        if sub_octaves < 0 or (sub_octaves and not analysis_partials):
            raise ValueError(f"sub_octaves {sub_octaves}: expected 0, or more with analysis_partials > 0")
        self.kwargs.update(options_when_on(analysis_partials=analysis_partials, harmonic_frames=harmonic_frames,
                                           sub_octaves=sub_octaves, noise_bands=noise_bands))
        self.harmonic_frames = harmonic_frames
        self.kernel_size, self.stride, self.analysis_partials = kernel_size, stride, analysis_partials
        self.sub_octaves, self.noise_bands = sub_octaves, noise_bands
        self.analysis = (nn.Conv1d(analysis_partials + noise_bands, channels, 1) if analysis_partials
                         else WindowedConv1d(1, channels, kernel_size, stride))
        self.body = nn.Sequential(nn.ReLU(), *_rewrite(channels, rewrite_layers),
                                  nn.Conv1d(channels, dimension, 1))
        if noise_bands:
            self.register_buffer("noise_bands_to_bins", mel_band_matrix(noise_bands, kernel_size // 2 + 1),
                                 persistent=False)
        if harmonic_frames:
            nn.init.zeros_(self.body[-1].weight)
            nn.init.zeros_(self.body[-1].bias)

    def measure(self, wav: torch.Tensor, pitch: torch.Tensor) -> torch.Tensor:
        """(B, T) padded notes -> (B, A + N, frames) the log magnitudes of their partials and
        the log levels of their noise (floored at :data:`ANALYSIS_FLOOR`), float32."""
        if not self.noise_bands:
            magnitudes = partial_magnitudes(wav, pitch, self.analysis_partials, self.kernel_size, self.stride,
                                            self.sub_octaves)
        else:
            magnitudes, frames, remade = partial_magnitudes(wav, pitch, self.analysis_partials, self.kernel_size,
                                                            self.stride, self.sub_octaves, remade=True)
            levels = residual_levels(frames, remade, self.noise_bands_to_bins)
            magnitudes = torch.cat([magnitudes, levels], dim=1)
        return torch.log(magnitudes + ANALYSIS_FLOOR)

    def forward(self, wav: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """Args: wav (B, T) already padded; pitch (B,) MIDI (with ``analysis_partials``).
        Returns: (B, D, (T - kernel) // stride + 1)."""
        if not self.analysis_partials:
            return self.body(self.analysis(wav.unsqueeze(1)))
        if pitch is None:
            raise ValueError("this encoder measures the note's partials: pass the notes' MIDI pitches")
        log_magnitudes = self.measure(wav, pitch).to(wav.dtype)
        frames = self.body(self.analysis(log_magnitudes))
        return frames + log_magnitudes / HARMONIC_SCALE if self.harmonic_frames else frames


class Autoencoder(nn.Module):
    """Phase 1: encoder + decoder on notes of ``wav_length`` samples padded by ``pad`` each side."""

    def __init__(self, dimension: int = 128, channels: int = 4096, kernel_size: int = 1024,
                 stride: int = 256, context_size: int = 9, rewrite_layers: int = 2,
                 wav_length: int = 64000, pad: int = 2304, clock_harmonics: int = 0, partials: int = 0,
                 conv_synthesis: bool = True, noise_bands: int = 0, analysis_partials: int = 0,
                 harmonic_frames: bool = False, sub_octaves: int = 0):
        super().__init__()
        self.kwargs = dict(dimension=dimension, channels=channels, kernel_size=kernel_size, stride=stride,
                           context_size=context_size, rewrite_layers=rewrite_layers,
                           wav_length=wav_length, pad=pad, clock_harmonics=clock_harmonics, partials=partials,
                           conv_synthesis=conv_synthesis)
        self.kwargs.update(options_when_on(noise_bands=noise_bands, analysis_partials=analysis_partials,
                                           harmonic_frames=harmonic_frames, sub_octaves=sub_octaves))
        self.wav_length, self.pad = wav_length, pad
        self.encoder = ConvolutionalEncoder(dimension, channels, kernel_size, stride, rewrite_layers,
                                            analysis_partials, harmonic_frames, sub_octaves if analysis_partials else 0,
                                            noise_bands if harmonic_frames else 0)
        self.decoder = ConvolutionalDecoder(dimension, channels, kernel_size, stride, context_size, rewrite_layers,
                                            clock_harmonics, partials, conv_synthesis, noise_bands, harmonic_frames,
                                            sub_octaves if partials else 0)
        self.num_frames = self.decoder.embedding_length(wav_length + 2 * pad)

    def encode(self, wav: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """Args: wav (B, wav_length); pitch (B,) MIDI (an encoder that measures partials needs
        it). Returns: embeddings (B, D, num_frames)."""
        return self.encoder(pad_wav(wav, self.pad), pitch)

    def decode(self, embedding: torch.Tensor, pitch: torch.Tensor | None = None,
               offset: int | torch.Tensor = 0) -> torch.Tensor:
        """Args: embedding (B, D, frames); pitch (B,) MIDI (a decoder with a clock needs it);
        offset: the sample of the note where the encoded waveform starts (0, or (B,) for
        windows). Returns: (B, samples)."""
        start = torch.as_tensor(offset, dtype=torch.float64) / self.decoder.stride
        return unpad_wav(self.decoder(embedding, pitch, start), self.pad)

    def forward(self, wav: torch.Tensor, pitch: torch.Tensor | None = None,
                offset: int | torch.Tensor = 0) -> torch.Tensor:
        """Args: wav (B, samples), the whole note or a window of it starting at sample ``offset``
        (int, or (B,)); pitch (B,) MIDI. Returns: the reconstruction (B, samples)."""
        return self.decode(self.encode(wav, pitch), pitch, offset)
