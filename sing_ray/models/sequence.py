"""SING's sequence generator: lookup tables for the note's symbols, an LSTM, one frame per step."""
from __future__ import annotations

import math

import torch
from torch import nn

NUM_VELOCITIES = 5     # NSynth's 25, 50, 75, 100, 127 (see nsynth.velocity_index)
NUM_PITCHES = 128


def midi_hz(pitch: torch.Tensor) -> torch.Tensor:
    """(B,) MIDI pitches -> their equal-tempered fundamentals in Hz (A4 = 440), float64."""
    return 440.0 * torch.pow(2.0, (pitch.double() - 69.0) / 12.0)


def phase_clock(pitch: torch.Tensor, start: int | float | torch.Tensor, length: int, harmonics: int,
                frame_hop: float) -> torch.Tensor:
    """cos and sin of the phase each of the note's first ``harmonics`` partials reaches at every frame.

    Partial ``k`` of MIDI ``pitch`` turns ``k * f0 * frame_hop`` cycles per frame (``frame_hop`` is
    the frame period in seconds: 256 / 16000); partials above the Nyquist frequency (8 kHz)
    are zeroed. Deterministic, no weights.

    Args:
        pitch: (B,) MIDI pitches.
        start, length: the frames wanted; ``start`` may be fractional and per note ((B,), e.g. a
            window cut at any sample of the note starts at its sample offset / 256).
        harmonics: partials (K).
        frame_hop: seconds between frames.
    Returns:
        (B, length, 2 K).
    """
    f0 = midi_hz(pitch)                                                               # (B,)
    k = torch.arange(1, harmonics + 1, dtype=torch.float64, device=pitch.device)     # (K,)
    cycles = f0[:, None] * k[None, :] * frame_hop                                     # (B, K) per frame
    first = torch.as_tensor(start, dtype=torch.float64, device=pitch.device).reshape(-1, 1)   # (B or 1, 1)
    t = first + torch.arange(length, dtype=torch.float64, device=pitch.device)        # (B or 1, L)
    angle = 2 * math.pi * ((cycles[:, None, :] * t[:, :, None]) % 1.0)                # (B, L, K)
    audible = (f0[:, None] * k[None, :] < 0.5 * SAMPLE_RATE).to(torch.float64)[:, None, :]
    return torch.cat([torch.cos(angle) * audible, torch.sin(angle) * audible], dim=-1).float()


def options_when_on(**options) -> dict:
    """The options that are on, for a model's recorded ``kwargs``: one that is off is left out,
    so that checkpoints from before the option existed load as they were."""
    return {name: value for name, value in options.items() if value}


def pitch_waves(pitch: torch.Tensor, count: int) -> torch.Tensor:
    """The MIDI pitch as ``count`` cosine and sine pairs of periods 24, 48, 96, ... semitones.

    Neighbouring pitches get nearby values and the pitch a semitone up is the same turn in
    every register, unlike a lookup table whose rows are learnt apart. Deterministic, no weights.

    Args:
        pitch: (B,) MIDI pitches.
    Returns:
        (B, 2 count).
    """
    period = 24.0 * 2.0 ** torch.arange(count, dtype=torch.float32, device=pitch.device)   # (N,)
    angle = 2 * math.pi * pitch.float()[:, None] / period[None, :]
    return torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1)


SAMPLE_RATE = 16000    # partials above half of it are left out of the clock
FRAME_HOP = 256 / SAMPLE_RATE


class SequenceGenerator(nn.Module):
    """(instrument, pitch, velocity) -> embeddings (B, D, num_frames) at 62.5 Hz.

    Every step sees the same note embedding (the concatenated velocity,
    instrument and pitch tables) plus, unless ``time_dim`` is 0, a learnt
    embedding of the step index, which tells the LSTM where in the note's
    envelope it is (the paper's ablation without it loses 0.012 test L1).

    Args:
        num_instruments: size of the instrument table (the dataset's vocabulary).
        dimension: output size per frame (128).
        hidden_size, num_layers: LSTM (1024, 3).
        num_frames: steps per note (265); the size of the time table.
        velocity_dim, instrument_dim, pitch_dim, time_dim: table widths (2, 16, 8, 4); 0 drops a table.
        phase_harmonics: K > 0 adds :func:`phase_clock` (2 K inputs per step): where the note's
            first K partials are in their cycles at each frame. Not in the paper (0 there). The
            decoder emits a window every 256 samples, so a frame sequence that makes a pitch
            other than a multiple of 62.5 Hz has to turn its partials' phase from frame to
            frame; without the clock the LSTM must learn that oscillator for every pitch,
            which it does not in minutes of training (docs/quality-diary.md, section 4).
        pitch_features: N > 0 adds :func:`pitch_waves` to the note embedding (2 N inputs per
            step): the pitch as smooth functions, beside its table. Not in the paper (0 there).
            An instrument's held-out pitches then lie between the pitches it was trained on.
        lstm_dropout: dropout on the outputs of each LSTM layer but the last, in training
            (``nn.LSTM``'s ``dropout``; needs ``num_layers`` > 1). Not in the paper (0 there).
    """

    def __init__(self, num_instruments: int, dimension: int = 128, hidden_size: int = 1024,
                 num_layers: int = 3, num_frames: int = 265, velocity_dim: int = 2,
                 instrument_dim: int = 16, pitch_dim: int = 8, time_dim: int = 4, phase_harmonics: int = 0,
                 pitch_features: int = 0, lstm_dropout: float = 0.0):
        super().__init__()
        if pitch_features < 0:
            raise ValueError(f"pitch_features must be >= 0, got {pitch_features}")
        if not 0 <= lstm_dropout < 1:
            raise ValueError(f"lstm_dropout must be in [0, 1), got {lstm_dropout}")
        self.kwargs = dict(num_instruments=num_instruments, dimension=dimension, hidden_size=hidden_size,
                           num_layers=num_layers, num_frames=num_frames, velocity_dim=velocity_dim,
                           instrument_dim=instrument_dim, pitch_dim=pitch_dim, time_dim=time_dim,
                           phase_harmonics=phase_harmonics)
        self.kwargs.update(options_when_on(pitch_features=pitch_features, lstm_dropout=lstm_dropout))
        self.num_frames, self.num_instruments = num_frames, num_instruments
        self.phase_harmonics, self.pitch_features = phase_harmonics, pitch_features
        self.velocity = nn.Embedding(NUM_VELOCITIES, velocity_dim) if velocity_dim else None
        self.instrument = nn.Embedding(num_instruments, instrument_dim) if instrument_dim else None
        self.pitch = nn.Embedding(NUM_PITCHES, pitch_dim) if pitch_dim else None
        self.time = nn.Embedding(num_frames, time_dim) if time_dim else None
        input_size = velocity_dim + instrument_dim + pitch_dim + 2 * pitch_features + time_dim + 2 * phase_harmonics
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True,
                            dropout=lstm_dropout if num_layers > 1 else 0.0)
        self.output = nn.Linear(hidden_size, dimension)

    def flops_per_step(self) -> float:
        """Floating-point operations per step (a multiply-add is 2): the LSTM's gates and the
        output layer; the tables, the clock and the gates' element-wise work are left out."""
        hidden, inputs = self.lstm.hidden_size, self.lstm.input_size
        layers = range(self.lstm.num_layers)
        gates = sum(2 * 4 * hidden * ((inputs if layer == 0 else hidden) + hidden) for layer in layers)
        return float(gates + 2 * hidden * self.output.out_features)

    def note_embedding(self, instrument: torch.Tensor, pitch: torch.Tensor, velocity: torch.Tensor,
                       instrument_embedding: torch.Tensor | None = None) -> torch.Tensor:
        """The constant part of each step's input.

        Args:
            instrument, pitch, velocity: (B,) long; velocity is an index in NSynth's 5 velocities.
            instrument_embedding: (B, instrument_dim) to use instead of the table (timbre mixing).
        Returns:
            (B, velocity_dim + instrument_dim + pitch_dim + 2 pitch_features).
        """
        parts = []
        if self.velocity is not None:
            parts.append(self.velocity(velocity))
        if self.instrument is not None:
            parts.append(self.instrument(instrument) if instrument_embedding is None else instrument_embedding)
        if self.pitch is not None:
            parts.append(self.pitch(pitch))
        if self.pitch_features:
            parts.append(pitch_waves(pitch, self.pitch_features))
        return torch.cat(parts, dim=-1) if parts else torch.zeros(len(pitch), 0, device=pitch.device)

    def forward(self, instrument: torch.Tensor, pitch: torch.Tensor, velocity: torch.Tensor,
                start: int = 0, length: int | None = None, hidden=None, return_hidden: bool = False,
                instrument_embedding: torch.Tensor | None = None):
        """Generate frames ``start .. start + length``.

        Args:
            instrument, pitch, velocity: (B,) long.
            start, length: the steps to run (default: the whole note); with
                ``hidden`` from the previous chunk this is truncated BPTT's unit.
            hidden: LSTM state ``(h, c)`` to continue from.
        Returns:
            (B, dimension, length) embeddings, and the LSTM state if ``return_hidden``.
        """
        if length is None:
            length = self.num_frames - start
        if start < 0 or start + length > self.num_frames:
            raise ValueError(f"steps {start}..{start + length} outside the note's {self.num_frames} frames")
        batch = len(pitch)
        note = self.note_embedding(instrument, pitch, velocity, instrument_embedding)
        steps = note.unsqueeze(1).expand(batch, length, note.shape[-1])
        if self.time is not None:
            t = torch.arange(start, start + length, device=pitch.device)
            steps = torch.cat([steps, self.time(t).unsqueeze(0).expand(batch, length, -1)], dim=-1)
        if self.phase_harmonics:
            clock = phase_clock(pitch, start, length, self.phase_harmonics, FRAME_HOP).to(steps.dtype)
            steps = torch.cat([steps, clock], dim=-1)
        # The LSTM runs in float32 even under autocast: it is a small share of the work, and
        # oneDNN has no bfloat16 LSTM on CPUs without AVX-512 BF16 (the call raises there).
        with torch.autocast(pitch.device.type, enabled=False):
            out, hidden = self.lstm(steps.float(), hidden)
            frames = self.output(out).transpose(1, 2)
        return (frames, hidden) if return_hidden else frames
