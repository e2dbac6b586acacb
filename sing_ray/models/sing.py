"""SING: the sequence generator followed by the decoder, and the builders from config.

What each preset runs (``model.frames``, ``model.heads``): ``paper`` the paper's SING, learnt
frames played by a transposed conv; ``tiny`` the same, small, its decoder reading the phase
clock; ``table1`` learnt frames played by the transposed conv and 64 partials; ``quick``
harmonic frames played by 64 partials and 64 bands of noise; ``small`` harmonic frames played
by 128 partials at multiples of half the pitch. All but ``paper`` and ``tiny`` also give the
LSTM the phase clock of the note's first 16 partials.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from .autoencoder import Autoencoder
from .decoder import Decoder, DecoderGemmWeights
from .noise import noise_scale_kwargs
from .sequence import SequenceGenerator, options_when_on


class SING(nn.Module):
    """(instrument, pitch, velocity) -> a 4 s waveform.

    Args: the union of :class:`~sing_ray.models.sequence.SequenceGenerator`'s and
    :class:`~sing_ray.models.decoder.Decoder`'s arguments, plus ``wav_length`` and ``pad``
    (the note's length and its padding).
    """

    def __init__(self, num_instruments: int, dimension: int = 128, channels: int = 4096,
                 kernel_size: int = 1024, stride: int = 256, context_size: int = 9,
                 rewrite_layers: int = 2, hidden_size: int = 1024, num_layers: int = 3,
                 velocity_dim: int = 2, instrument_dim: int = 16, pitch_dim: int = 8, time_dim: int = 4,
                 wav_length: int = 64000, pad: int = 2304, phase_harmonics: int = 0, clock_harmonics: int = 0,
                 frames: str = "learnt", heads=("transposed_conv",), partials: int = 0, noise_bands: int = 0,
                 sub_octaves: int = 0, pitch_features: int = 0, lstm_dropout: float = 0.0,
                 noise_scale: str = "mel"):
        super().__init__()
        self.wav_length, self.pad = wav_length, pad
        self.decoder = Decoder(dimension, channels, kernel_size, stride, context_size, rewrite_layers,
                               clock_harmonics, frames, heads, partials, noise_bands, sub_octaves, noise_scale)
        num_frames = self.decoder.embedding_length(wav_length + 2 * pad)
        self.sequence = SequenceGenerator(num_instruments, dimension, hidden_size, num_layers, num_frames,
                                          velocity_dim, instrument_dim, pitch_dim, time_dim, phase_harmonics,
                                          pitch_features, lstm_dropout)
        self.kwargs = dict(num_instruments=num_instruments, dimension=dimension, channels=channels,
                           kernel_size=kernel_size, stride=stride, context_size=context_size,
                           rewrite_layers=rewrite_layers, hidden_size=hidden_size, num_layers=num_layers,
                           velocity_dim=velocity_dim, instrument_dim=instrument_dim, pitch_dim=pitch_dim,
                           time_dim=time_dim, wav_length=wav_length, pad=pad, phase_harmonics=phase_harmonics,
                           clock_harmonics=clock_harmonics, frames=frames, heads=self.decoder.kwargs["heads"],
                           partials=partials, noise_bands=noise_bands, sub_octaves=sub_octaves,
                           **noise_scale_kwargs(noise_scale))
        self.kwargs.update(options_when_on(pitch_features=pitch_features, lstm_dropout=lstm_dropout))

    @property
    def num_frames(self) -> int:
        return self.sequence.num_frames

    def forward(self, instrument: torch.Tensor, pitch: torch.Tensor, velocity: torch.Tensor,
                instrument_embedding: torch.Tensor | None = None, span: tuple[int, int] | None = None,
                weights: DecoderGemmWeights | None = None) -> torch.Tensor:
        """Samples ``span=(start, stop)`` of the notes (default: all ``wav_length``).

        The LSTM stops at the last frame the samples depend on, and the decoder computes only
        the frames whose windows reach them (:meth:`~sing_ray.models.decoder.Decoder.synthesize`):
        253 of 265 frames for a whole note at the paper's sizes, a quarter of them for the
        one-second windows the presets fine-tune on.

        Args:
            instrument, pitch, velocity: (B,) long (velocity: index in NSynth's 5).
            instrument_embedding: (B, instrument_dim) in place of the table's rows (timbre mixes).
            weights: the decoder's prepared weights (e.g. bfloat16 ones; default: its parameters).
        Returns:
            (B, stop - start), float32 (also when the products run in bfloat16).
        """
        start, stop = (0, self.wav_length) if span is None else span
        if not 0 <= start < stop <= self.wav_length:
            raise ValueError(f"span {start}..{stop} outside the note's {self.wav_length} samples")
        start, stop = start + self.pad, stop + self.pad
        _, last = self.decoder.needed_frames(start, stop, self.num_frames)
        steps = min(self.num_frames, last + self.decoder.context_size // 2 + 1)
        frames = self.sequence(instrument, pitch, velocity, length=steps, instrument_embedding=instrument_embedding)
        return self.decoder.synthesize(frames.transpose(1, 2), start, stop, num_frames=self.num_frames,
                                       weights=weights, pitch=pitch)

    def synthesize(self, instrument: torch.Tensor, pitch: torch.Tensor, velocity: torch.Tensor,
                   instrument_embedding: torch.Tensor | None = None,
                   weights: DecoderGemmWeights | None = None) -> torch.Tensor:
        """The whole notes, as calling the model gives them (the name the Generator uses).

        Args: as :meth:`forward`; weights: cached :meth:`~sing_ray.models.decoder.Decoder.gemm_weights`.
        Returns: (B, wav_length), float32.
        """
        return self(instrument, pitch, velocity, instrument_embedding=instrument_embedding, weights=weights)

    def flops_per_note(self) -> float:
        """Floating-point operations of one whole note (a multiply-add is 2), from the parts:
        the LSTM steps and decoder frames :meth:`forward` computes, each at its part's cost
        (:meth:`~sing_ray.models.sequence.SequenceGenerator.flops_per_step`,
        :meth:`~sing_ray.models.decoder.Decoder.flops_per_frame`)."""
        start, stop = self.pad, self.pad + self.wav_length
        first, last = self.decoder.needed_frames(start, stop, self.num_frames)
        steps = min(self.num_frames, last + self.decoder.context_size // 2 + 1)
        return steps * self.sequence.flops_per_step() + (last - first + 1) * self.decoder.flops_per_frame()


MODEL_CLASSES = {cls.__name__: cls for cls in (Autoencoder, SequenceGenerator, SING)}


def num_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _decoder_kwargs(m: ModelConfig) -> dict:
    return dict(dimension=m.dimension, channels=m.channels, kernel_size=m.kernel_size, stride=m.stride,
                context_size=m.context_size, rewrite_layers=m.rewrite_layers, wav_length=m.wav_length, pad=m.pad,
                clock_harmonics=m.decoder_harmonics, frames=m.frames, heads=m.heads, partials=m.partials,
                noise_bands=m.noise_bands, sub_octaves=m.sub_octaves,
                **noise_scale_kwargs(m.noise_scale if "noise" in m.heads else "mel"))


def autoencoder_kwargs(m: ModelConfig) -> dict:
    """The ``kwargs`` an autoencoder built from ``m`` records in its checkpoint (what a run that
    takes another run's autoencoder compares)."""
    return _decoder_kwargs(m)


def _table_kwargs(m: ModelConfig) -> dict:
    return dict(dimension=m.dimension, hidden_size=m.hidden_size, num_layers=m.num_layers,
                velocity_dim=m.velocity_dim, instrument_dim=m.instrument_dim, pitch_dim=m.pitch_dim,
                time_dim=m.time_dim, phase_harmonics=m.phase_harmonics,
                **options_when_on(pitch_features=m.pitch_features, lstm_dropout=m.lstm_dropout))


def build_autoencoder(m: ModelConfig) -> Autoencoder:
    return Autoencoder(**_decoder_kwargs(m))


def build_sequence_generator(m: ModelConfig, num_instruments: int) -> SequenceGenerator:
    num_frames = (m.wav_length + 2 * m.pad - m.kernel_size) // m.stride + 1
    return SequenceGenerator(num_instruments=num_instruments, num_frames=num_frames, **_table_kwargs(m))


def build_sing(m: ModelConfig, num_instruments: int) -> SING:
    return SING(num_instruments=num_instruments, **{**_decoder_kwargs(m), **_table_kwargs(m)})


def sing_kwargs_from_phases(sequence_kwargs: dict, autoencoder_kwargs: dict) -> dict:
    """SING's constructor arguments from those of phase 2's sequence generator and phase 1's
    autoencoder (today's names: :func:`~sing_ray.models.legacy.upgrade_kwargs` first).

    Raises:
        ValueError: the two phases' frames differ in size or number.
    """
    sequence = dict(sequence_kwargs)
    num_frames = sequence.pop("num_frames")
    if sequence["dimension"] != autoencoder_kwargs["dimension"]:
        raise ValueError(f"the sequence generator writes frames of {sequence['dimension']} values, the "
                         f"autoencoder's decoder reads {autoencoder_kwargs['dimension']}")
    kwargs = {**autoencoder_kwargs, **sequence}
    expected = (kwargs["wav_length"] + 2 * kwargs["pad"] - kwargs["kernel_size"]) // kwargs["stride"] + 1
    if num_frames != expected:
        raise ValueError(f"the sequence generator writes {num_frames} frames a note, the autoencoder's notes "
                         f"have {expected}")
    return kwargs
