"""SING's sequence generator: lookup tables for the note's symbols, an LSTM, one frame per step."""
from __future__ import annotations

import torch
from torch import nn

NUM_VELOCITIES = 5     # NSynth's 25, 50, 75, 100, 127 (see nsynth.velocity_index)
NUM_PITCHES = 128


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
    """

    def __init__(self, num_instruments: int, dimension: int = 128, hidden_size: int = 1024,
                 num_layers: int = 3, num_frames: int = 265, velocity_dim: int = 2,
                 instrument_dim: int = 16, pitch_dim: int = 8, time_dim: int = 4):
        super().__init__()
        self.kwargs = dict(num_instruments=num_instruments, dimension=dimension, hidden_size=hidden_size,
                           num_layers=num_layers, num_frames=num_frames, velocity_dim=velocity_dim,
                           instrument_dim=instrument_dim, pitch_dim=pitch_dim, time_dim=time_dim)
        self.num_frames, self.num_instruments = num_frames, num_instruments
        self.velocity = nn.Embedding(NUM_VELOCITIES, velocity_dim) if velocity_dim else None
        self.instrument = nn.Embedding(num_instruments, instrument_dim) if instrument_dim else None
        self.pitch = nn.Embedding(NUM_PITCHES, pitch_dim) if pitch_dim else None
        self.time = nn.Embedding(num_frames, time_dim) if time_dim else None
        input_size = velocity_dim + instrument_dim + pitch_dim + time_dim
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.output = nn.Linear(hidden_size, dimension)

    def note_embedding(self, instrument: torch.Tensor, pitch: torch.Tensor, velocity: torch.Tensor,
                       instrument_embedding: torch.Tensor | None = None) -> torch.Tensor:
        """The constant part of each step's input.

        Args:
            instrument, pitch, velocity: (B,) long; velocity is an index in NSynth's 5 velocities.
            instrument_embedding: (B, instrument_dim) to use instead of the table (timbre mixing).
        Returns:
            (B, velocity_dim + instrument_dim + pitch_dim).
        """
        parts = []
        if self.velocity is not None:
            parts.append(self.velocity(velocity))
        if self.instrument is not None:
            parts.append(self.instrument(instrument) if instrument_embedding is None else instrument_embedding)
        if self.pitch is not None:
            parts.append(self.pitch(pitch))
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
        out, hidden = self.lstm(steps, hidden)
        frames = self.output(out).transpose(1, 2)
        return (frames, hidden) if return_hidden else frames
