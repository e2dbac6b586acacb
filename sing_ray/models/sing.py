"""SING: the sequence generator followed by the convolutional decoder, and builders from config."""
from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from ..dsp import unpad_wav
from .autoencoder import Autoencoder, ConvolutionalDecoder, DecoderGemmWeights
from .sequence import SequenceGenerator, options_when_on


class SING(nn.Module):
    """(instrument, pitch, velocity) -> a 4 s waveform.

    Args: the union of :class:`SequenceGenerator` and :class:`ConvolutionalDecoder`
    arguments, plus ``wav_length`` and ``pad`` (the note's length and its padding).
    """

    def __init__(self, num_instruments: int, dimension: int = 128, channels: int = 4096,
                 kernel_size: int = 1024, stride: int = 256, context_size: int = 9,
                 rewrite_layers: int = 2, hidden_size: int = 1024, num_layers: int = 3,
                 velocity_dim: int = 2, instrument_dim: int = 16, pitch_dim: int = 8, time_dim: int = 4,
                 wav_length: int = 64000, pad: int = 2304, phase_harmonics: int = 0, clock_harmonics: int = 0,
                 partials: int = 0, conv_synthesis: bool = True, noise_bands: int = 0,
                 harmonic_frames: bool = False, pitch_features: int = 0, lstm_dropout: float = 0.0,
                 sub_octaves: int = 0):
        super().__init__()
        self.kwargs = dict(num_instruments=num_instruments, dimension=dimension, channels=channels,
                           kernel_size=kernel_size, stride=stride, context_size=context_size,
                           rewrite_layers=rewrite_layers, hidden_size=hidden_size, num_layers=num_layers,
                           velocity_dim=velocity_dim, instrument_dim=instrument_dim, pitch_dim=pitch_dim,
                           time_dim=time_dim, wav_length=wav_length, pad=pad, phase_harmonics=phase_harmonics,
                           clock_harmonics=clock_harmonics, partials=partials,
                           conv_synthesis=conv_synthesis)
        self.kwargs.update(options_when_on(noise_bands=noise_bands, harmonic_frames=harmonic_frames,
                                           pitch_features=pitch_features, lstm_dropout=lstm_dropout,
                                           sub_octaves=sub_octaves))
        self.wav_length, self.pad = wav_length, pad
        self.decoder = ConvolutionalDecoder(dimension, channels, kernel_size, stride, context_size, rewrite_layers,
                                            clock_harmonics, partials, conv_synthesis, noise_bands, harmonic_frames,
                                            sub_octaves)
        num_frames = self.decoder.embedding_length(wav_length + 2 * pad)
        self.sequence = SequenceGenerator(num_instruments, dimension, hidden_size, num_layers, num_frames,
                                          velocity_dim, instrument_dim, pitch_dim, time_dim, phase_harmonics,
                                          pitch_features, lstm_dropout)

    @property
    def num_frames(self) -> int:
        return self.sequence.num_frames

    def forward(self, instrument: torch.Tensor, pitch: torch.Tensor, velocity: torch.Tensor,
                instrument_embedding: torch.Tensor | None = None,
                span: tuple[int, int] | None = None) -> torch.Tensor:
        """Args: (B,) long each (velocity: index in NSynth's 5).

        ``span=(start, stop)`` returns only those samples of the note, computing only the
        LSTM steps and decoder frames they depend on (training on windows of notes).
        Returns: (B, wav_length), or (B, stop - start) with ``span``.
        """
        if span is not None:
            return self._window(instrument, pitch, velocity, *span, instrument_embedding=instrument_embedding)
        frames = self.sequence(instrument, pitch, velocity, instrument_embedding=instrument_embedding)
        return unpad_wav(self.decoder(frames, pitch), self.pad)

    def _window(self, instrument, pitch, velocity, start: int, stop: int, instrument_embedding=None,
                weights: DecoderGemmWeights | None = None) -> torch.Tensor:
        """Samples ``[start, stop)`` of the unpadded note by the frames-last path."""
        if not 0 <= start < stop <= self.wav_length:
            raise ValueError(f"span {start}..{stop} outside the note's {self.wav_length} samples")
        start, stop = start + self.pad, stop + self.pad
        _, last = self.decoder.needed_frames(start, stop, self.num_frames)
        steps = min(self.num_frames, last + self.decoder.kwargs["context_size"] // 2 + 1)
        frames = self.sequence(instrument, pitch, velocity, length=steps, instrument_embedding=instrument_embedding)
        return self.decoder.synthesize(frames.transpose(1, 2), start, stop, num_frames=self.num_frames,
                                       weights=weights, pitch=pitch)

    def synthesize(self, instrument: torch.Tensor, pitch: torch.Tensor, velocity: torch.Tensor,
                   instrument_embedding: torch.Tensor | None = None,
                   weights: DecoderGemmWeights | None = None) -> torch.Tensor:
        """:meth:`forward`'s waveform by the fast path: the same function, less work.

        The LSTM stops at the last frame the kept samples depend on, and the decoder
        runs as frames-last GEMMs over only the frames whose windows reach the
        unpadded note (:meth:`ConvolutionalDecoder.synthesize`): 253 of 265 frames
        at the paper's sizes.

        Args:
            instrument, pitch, velocity, instrument_embedding: as :meth:`forward`.
            weights: cached :meth:`ConvolutionalDecoder.gemm_weights` (e.g. bfloat16 ones).
        Returns:
            (B, wav_length), float32 (also when the products run in bfloat16).
        """
        return self._window(instrument, pitch, velocity, 0, self.wav_length,
                            instrument_embedding=instrument_embedding, weights=weights)


MODEL_CLASSES = {cls.__name__: cls for cls in (Autoencoder, SequenceGenerator, SING)}


def num_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _autoencoder_kwargs(m: ModelConfig) -> dict:
    return dict(dimension=m.dimension, channels=m.channels, kernel_size=m.kernel_size, stride=m.stride,
                context_size=m.context_size, rewrite_layers=m.rewrite_layers,
                wav_length=m.wav_length, pad=m.pad, clock_harmonics=m.decoder_harmonics,
                partials=m.partials, conv_synthesis=m.conv_synthesis, noise_bands=m.noise_bands,
                harmonic_frames=m.harmonic_frames, sub_octaves=m.sub_octaves)


def _encoder_kwargs(m: ModelConfig) -> dict:
    return options_when_on(analysis_partials=m.analysis_partials)


# Options an autoencoder's kwargs (and so its checkpoint) name only when they are on.
_NAMED_WHEN_ON = ("noise_bands", "analysis_partials", "harmonic_frames", "sub_octaves")


def autoencoder_kwargs(m: ModelConfig) -> dict:
    """The ``kwargs`` an autoencoder built from ``m`` records in its checkpoint."""
    kwargs = {**_autoencoder_kwargs(m), **_encoder_kwargs(m)}
    return {k: v for k, v in kwargs.items() if v or k not in _NAMED_WHEN_ON}


def _table_kwargs(m: ModelConfig) -> dict:
    return dict(dimension=m.dimension, hidden_size=m.hidden_size, num_layers=m.num_layers,
                velocity_dim=m.velocity_dim, instrument_dim=m.instrument_dim, pitch_dim=m.pitch_dim,
                time_dim=m.time_dim, phase_harmonics=m.phase_harmonics,
                **options_when_on(pitch_features=m.pitch_features, lstm_dropout=m.lstm_dropout))


def build_autoencoder(m: ModelConfig) -> Autoencoder:
    return Autoencoder(**_autoencoder_kwargs(m), **_encoder_kwargs(m))


def build_sequence_generator(m: ModelConfig, num_instruments: int) -> SequenceGenerator:
    num_frames = (m.wav_length + 2 * m.pad - m.kernel_size) // m.stride + 1
    return SequenceGenerator(num_instruments=num_instruments, num_frames=num_frames, **_table_kwargs(m))


def build_sing(m: ModelConfig, num_instruments: int) -> SING:
    kwargs = {**_autoencoder_kwargs(m), **_table_kwargs(m)}
    return SING(num_instruments=num_instruments, **kwargs)
