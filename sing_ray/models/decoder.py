"""SING's decoder: frames to waveform, a trunk of convolutions and the heads that play.

The trunk reads each frame with its neighbours (a conv over ``context_size`` frames, "same"
padded, beside the phase clock where there is one) and rewrites it through 1x1 convs into a
hidden row of ``channels``; each head (:mod:`sing_ray.models.heads`) turns the row into a
window of ``kernel_size`` samples, and the windows, summed over the heads, are overlap-added
every ``stride`` samples. What the presets run: ``paper`` and ``tiny`` the paper's transposed
conv (``tiny`` reading the phase clock); ``table1`` the transposed conv and 64 partials;
``quick`` 64 partials and 64 bands of noise, ``small`` 128 partials at multiples of half the
pitch, both playing harmonic frames.

One path computes the waveform, in training and in rendering (:meth:`Decoder.synthesize`):
inference on a CPU is GEMM-bound, so every conv is one matrix product over all (batch, frame)
rows without layout changes, and the frames whose windows only reach samples outside the
range wanted (SING's padding, or outside a training window) are never computed.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check_parts
from .heads import Head, Rows, build_heads
from .noise import noise_scale_kwargs
from .layers import rewrite_convs
from .legacy import rename_legacy_decoder_keys
from .sequence import SAMPLE_RATE, phase_clock

# The decoder's attribute of each head: the transposed conv's is "synthesis", its name in
# checkpoints since the paper's decoder.
HEAD_ATTRIBUTES = {"transposed_conv": "synthesis", "partials": "partials", "noise": "noise"}


class DecoderGemmWeights(NamedTuple):
    """The decoder's weights laid out for :meth:`Decoder.synthesize` (frames-last GEMMs).

    Attributes:
        context: (channels, (dimension + 2 clock_harmonics) * context_size) the first conv,
            rows flattened as (channel, tap).
        context_bias: (channels,).
        rewrite: ``((channels, channels) weight, (channels,) bias)`` per 1x1 conv.
        heads: each head's :meth:`~sing_ray.models.heads.Head.gemm_weights`, by head name.
    """

    context: torch.Tensor
    context_bias: torch.Tensor
    rewrite: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    heads: dict[str, tuple[torch.Tensor, ...]]


class Decoder(nn.Module):
    """Frames to waveform: the trunk, then the heads ``heads`` (see the module docstring).

    Args:
        dimension: values per frame (128).
        channels: the trunk's width (4096).
        kernel_size, stride: each frame's window and the step between windows (1024, 256).
        context_size: frames the first conv reads (9), "same" padded.
        rewrite_layers: 1x1 conv + ReLU blocks (2).
        clock_harmonics: K > 0 gives the trunk, beside every frame, the cos and sin of where the
            note's first K partials are in their cycles (:func:`~sing_ray.models.sequence.phase_clock`,
            not in the paper): a window every 256 samples can only make multiples of 62.5 Hz
            from frames that stay the same; with the clock the trunk turns the partials itself
            (docs/quality-diary.md, section 6). The pitch is then an argument of
            every call.
        frames: "learnt" or "harmonic" (the heads then play the frames' values; see
            :mod:`sing_ray.models.heads`).
        heads: what plays, of :data:`~sing_ray.config.HEADS`; the transposed conv starts at zero
            beside the partials, so that at first the note is its partials alone.
        partials, noise_bands, sub_octaves: the partials and noise heads' sizes; the rules
            between these are :func:`~sing_ray.config.check_parts`'s.
        noise_scale: where harmonic frames hold the noise's levels, "mel" or "pitch"
            (:class:`~sing_ray.models.heads.NoiseHead`); recorded in ``kwargs`` only when not "mel".
    """

    def __init__(self, dimension: int = 128, channels: int = 4096, kernel_size: int = 1024,
                 stride: int = 256, context_size: int = 9, rewrite_layers: int = 2, clock_harmonics: int = 0,
                 frames: str = "learnt", heads=("transposed_conv",), partials: int = 0, noise_bands: int = 0,
                 sub_octaves: int = 0, noise_scale: str = "mel"):
        super().__init__()
        heads = check_parts(frames, heads, dimension, partials, noise_bands, sub_octaves, noise_scale)
        self.kwargs = dict(dimension=dimension, channels=channels, kernel_size=kernel_size, stride=stride,
                           context_size=context_size, rewrite_layers=rewrite_layers, clock_harmonics=clock_harmonics,
                           frames=frames, heads=heads, partials=partials, noise_bands=noise_bands,
                           sub_octaves=sub_octaves, **noise_scale_kwargs(noise_scale))
        self.kernel_size, self.stride, self.context_size = kernel_size, stride, context_size
        self.dimension, self.channels, self.clock_harmonics = dimension, channels, clock_harmonics
        self.frames = frames
        self.body = nn.Sequential(
            nn.Conv1d(dimension + 2 * clock_harmonics, channels, context_size, padding=context_size // 2), nn.ReLU(),
            *rewrite_convs(channels, rewrite_layers))
        built = build_heads(heads, channels, kernel_size, stride, frames, partials, noise_bands, sub_octaves,
                            noise_scale)
        for name, attribute in HEAD_ATTRIBUTES.items():
            setattr(self, attribute, built.get(name))
        if self.synthesis is not None and self.partials is not None:
            nn.init.zeros_(self.synthesis.weight)
        # Checkpoints from before the heads had names call the partials head "amplitudes".
        self.register_load_state_dict_pre_hook(rename_legacy_decoder_keys)

    def heads(self) -> list[tuple[str, Head]]:
        """``(name, head)`` of each head, in the order they are built and summed."""
        return [(name, getattr(self, a)) for name, a in HEAD_ATTRIBUTES.items() if getattr(self, a) is not None]

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

    def needed_frames(self, start: int, stop: int, num_frames: int) -> tuple[int, int]:
        """The frames ``[first, last]`` whose windows reach samples ``[start, stop)``.

        Frame ``j`` writes samples ``[j * stride, j * stride + kernel_size)``.
        """
        first = max(0, (start - self.kernel_size) // self.stride + 1)
        last = min(num_frames - 1, (stop - 1) // self.stride)
        return first, last

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
            heads={name: head.gemm_weights(cast) for name, head in self.heads()})

    def forward(self, embedding: torch.Tensor, pitch: torch.Tensor | None = None,
                first_frame: int | float | torch.Tensor = 0) -> torch.Tensor:
        """The waveform of frames laid out as the encoder and the LSTM give them: :meth:`synthesize`.

        Args: embedding (B, D, L); pitch (B,) MIDI; first_frame: the note frame of
        ``embedding[..., 0]`` (fractional and per note, (B,), for a window cut at any sample).
        Returns: (B, wav_length(L)).
        """
        return self.synthesize(embedding.transpose(1, 2), pitch=pitch, first_frame=first_frame)

    def synthesize(self, frames: torch.Tensor, start: int = 0, stop: int | None = None,
                   num_frames: int | None = None, weights: DecoderGemmWeights | None = None,
                   pitch: torch.Tensor | None = None, first_frame: int | float | torch.Tensor = 0) -> torch.Tensor:
        """Samples ``[start, stop)`` of the waveform the frames make, as frames-last GEMMs.

        The trunk's convs are matrix products over the (batch, frame) rows whose windows reach
        ``[start, stop)`` (its context conv over their neighbours, zeros beyond the note's
        frames, as a "same"-padded conv); each head writes those rows' windows, which are
        summed and overlap-added (:meth:`_overlap_add`). Differentiable: training runs it too.

        Args:
            frames: (B, L, D) frames in time-major order (the LSTM's natural layout); a
                prefix of the note's frames is enough when it reaches every frame needed.
            start, stop: the sample range wanted (default: all of ``wav_length(num_frames)``).
            num_frames: frames of the whole note (default ``L``).
            weights: from :meth:`gemm_weights` (default: computed now from the parameters).
            pitch: (B,) MIDI pitches, for a decoder with a phase clock or partials.
            first_frame: the note frame of ``frames[:, 0]``, where the clock, the partials'
                phases and the noise's phases start (fractional and per note, (B,), for the
                autoencoder's windows cut at any sample).
        Returns:
            (B, stop - start) waveform, float32 (also when the products run in bfloat16).
        """
        w = self.gemm_weights() if weights is None else weights
        batch, length, _ = frames.shape
        num_frames = length if num_frames is None else num_frames
        total = self.wav_length(num_frames)
        stop = total if stop is None else stop
        if not 0 <= start < stop <= total:
            raise ValueError(f"samples {start}..{stop} outside the {total} that {num_frames} frames make")
        first, last = self.needed_frames(start, stop, num_frames)
        half = self.context_size // 2
        lo, hi = first - half, last + half + 1
        if min(hi, num_frames) > length:
            raise ValueError(f"frames up to {min(hi, num_frames) - 1} needed, only {length} given")
        x = self.with_clock(frames[:, max(lo, 0):min(hi, num_frames)], pitch, first_frame + max(lo, 0))
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
        hidden = h.view(batch, count, -1)
        origin = torch.floor(first_frame) if isinstance(first_frame, torch.Tensor) else int(first_frame)
        pieces, constant, value = None, None, 0
        for name, head in self.heads():
            values = None
            if head.frame_values:
                values = frames[:, first:last + 1, value:value + head.frame_values]
                value += head.frame_values
            rows = Rows(pitch, (first_frame + first) * self.stride, origin + first, values)
            out = head(hidden, w.heads[name], rows)
            pieces = out if pieces is None else pieces + out
            c = head.constant(w.heads[name])
            if c is not None:
                constant = c if constant is None else constant + c
        wav = self._overlap_add(pieces)
        if constant is not None:
            wav = wav + constant
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

    def flops_per_frame(self) -> float:
        """Floating-point operations per frame of :meth:`synthesize`: the trunk's products and
        every head's (:meth:`~sing_ray.models.heads.Head.flops_per_frame`); element-wise work,
        the clock and the overlap-add are left out."""
        inputs = (self.dimension + 2 * self.clock_harmonics) * self.context_size
        rewrite = sum(1 for m in self.body if isinstance(m, nn.Conv1d)) - 1
        trunk = 2.0 * inputs * self.channels + rewrite * 2.0 * self.channels * self.channels
        return trunk + sum(head.flops_per_frame() for _, head in self.heads())
