"""One optimisation step of each training phase, and the evaluation passes. Pure torch, no Ray.

The Ray Train loops (:mod:`sing_ray.train.loops`) and the benchmark's plain
PyTorch loop (:mod:`sing_ray.train.bench`) call the same functions, so the
benchmark compares the same work with and without Ray.

Every step takes a ``guard``: a callable that sees the loss before
``backward()`` and raises :class:`NonFiniteLoss` when it is not finite. In a
distributed run the guard all-reduces a flag, so that every worker stops at
the same step (a worker that stopped alone would leave the others blocked in
DDP's gradient all-reduce) and no bad gradient reaches the weights.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..losses import table1_metrics
from ..nsynth import VELOCITIES

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Guard = Callable[[torch.Tensor], None]


class NonFiniteLoss(ArithmeticError):
    """A training loss was NaN or infinite (raised by a guard before ``backward()``)."""


def check_finite(loss: torch.Tensor) -> None:
    """The single-process guard: raise :class:`NonFiniteLoss` unless ``loss`` is finite."""
    if not torch.isfinite(loss.detach()).all():
        raise NonFiniteLoss(f"non-finite loss {loss.detach().item()}")


def velocity_indices(velocity: torch.Tensor) -> torch.Tensor:
    """NSynth velocities (25, 50, 75, 100, 127) -> indices 0-4 of the velocity table.

    Args:
        velocity: (B,) integer tensor of NSynth velocities.
    Returns:
        (B,) long tensor; ValueError for a velocity NSynth does not use.
    """
    table = torch.full((128,), -1, dtype=torch.long, device=velocity.device)
    table[torch.tensor(VELOCITIES, device=velocity.device)] = torch.arange(len(VELOCITIES),
                                                                           device=velocity.device)
    index = table[velocity.long().clamp(0, 127)]
    if (index < 0).any():
        raise ValueError(f"velocities outside NSynth's {VELOCITIES}: {velocity[index < 0].tolist()}")
    return index


def random_offsets(batch: int, length: int, crop: int, stride: int = 1) -> torch.Tensor:
    """(batch,) random start samples of ``crop``-long windows in ``length`` samples, multiples of ``stride``."""
    slots = (length - crop) // stride + 1
    return torch.randint(0, slots, (batch,)) * stride


def crop_notes(wav: torch.Tensor, crop: int, return_offsets: bool = False):
    """(B, T) -> (B, crop): each note cut at its own random offset (``crop`` 0 or >= T: unchanged).

    With ``return_offsets``, also the (B,) start samples (zeros when uncut).
    """
    if not crop or crop >= wav.shape[-1]:
        return (wav, torch.zeros(len(wav), dtype=torch.long, device=wav.device)) if return_offsets else wav
    starts = random_offsets(len(wav), wav.shape[-1], crop).to(wav.device)
    index = starts.unsqueeze(1) + torch.arange(crop, device=wav.device)
    cut = torch.gather(wav, 1, index)
    return (cut, starts) if return_offsets else cut


def autoencoder_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, wav: torch.Tensor,
                     loss_fn: LossFn, guard: Guard = check_finite, crop: int = 0,
                     pitch: torch.Tensor | None = None) -> torch.Tensor:
    """Phase 1: reconstruct the notes through the encoder and decoder, one optimizer step.

    Args:
        model: the :class:`~sing_ray.models.Autoencoder` (possibly DDP-wrapped).
        wav: (B, T) waveforms in [-1, 1].
        loss_fn: ``loss_fn(output, target)`` (spectral or waveform loss).
        guard: sees the loss before backward (see module docstring).
        crop: train on a random ``crop``-sample window of each note (0: whole notes); the
            encoder and decoder read and write each frame from a few around it, so a window
            costs its share of a note.
        pitch: (B,) MIDI pitches, for a harmonic encoder, and a decoder with a phase clock or
            partials (each window's clock and partials start where the window sits in its note).
    Returns:
        the loss (scalar, detached), the mean over this batch.
    """
    optimizer.zero_grad(set_to_none=True)
    wav, offsets = crop_notes(wav, crop, return_offsets=True)
    loss = loss_fn(model(wav, pitch, offsets), wav)
    guard(loss)
    loss.backward()
    optimizer.step()
    return loss.detach()


def sequence_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, instrument: torch.Tensor,
                  pitch: torch.Tensor, velocity: torch.Tensor, target: torch.Tensor, truncated_steps: int,
                  loss_fn: LossFn = F.mse_loss, guard: Guard = check_finite) -> torch.Tensor:
    """Phase 2: fit the LSTM to the encoder's embeddings with truncated back-propagation.

    The note's frames are processed in chunks of ``truncated_steps``; each chunk
    gets its own backward pass and optimizer step, and the LSTM state is carried
    to the next chunk *detached*. Back-propagating through all 265 steps would
    keep every step's activations alive and push gradients through a long
    product of recurrent Jacobians (vanishing/exploding); the paper truncates at
    32 steps, which keeps memory bounded and updates frequent while the forward
    state still spans the whole note.

    Args:
        model: the :class:`~sing_ray.models.SequenceGenerator` (possibly DDP-wrapped).
        instrument, pitch, velocity: (B,) long; velocity is the index in NSynth's 5 velocities.
        target: (B, D, F) embeddings from the trained encoder.
        truncated_steps: frames per chunk (32).
        loss_fn: distance between predicted and target frames (MSE).
    Returns:
        the loss over the whole note (scalar, detached): the chunk losses weighted by chunk length.
    """
    num_frames = target.shape[-1]
    hidden = None
    total = torch.zeros((), device=target.device)
    for start in range(0, num_frames, truncated_steps):
        length = min(truncated_steps, num_frames - start)
        optimizer.zero_grad(set_to_none=True)
        frames, hidden = model(instrument, pitch, velocity, start=start, length=length, hidden=hidden,
                               return_hidden=True)
        loss = loss_fn(frames, target[..., start:start + length])
        guard(loss)
        loss.backward()
        optimizer.step()
        # Cut the graph here: the next chunk starts from this state's value, not its history.
        hidden = tuple(h.detach() for h in hidden)
        total = total + loss.detach() * length
    return total / num_frames


def finetune_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, instrument: torch.Tensor,
                  pitch: torch.Tensor, velocity: torch.Tensor, wav: torch.Tensor, loss_fn: LossFn,
                  guard: Guard = check_finite, crop: int = 0) -> torch.Tensor:
    """Phase 3: generate the notes end to end (LSTM then decoder), one optimizer step.

    Args:
        model: the :class:`~sing_ray.models.SING` (possibly DDP-wrapped).
        instrument, pitch, velocity: (B,) long; velocity is the index in NSynth's 5 velocities.
        wav: (B, T) the real notes.
        crop: synthesize and compare only a random ``crop``-sample window of the notes, the
            same for the whole batch (0: whole notes). The LSTM still runs from the note's
            start; the decoder computes only the frames that reach the window.
    Returns:
        the loss (scalar, detached).
    """
    optimizer.zero_grad(set_to_none=True)
    if crop and crop < wav.shape[-1]:
        start = int(random_offsets(1, wav.shape[-1], crop)[0])
        output = model(instrument, pitch, velocity, span=(start, start + crop))
        loss = loss_fn(output, wav[:, start:start + crop])
    else:
        loss = loss_fn(model(instrument, pitch, velocity), wav)
    guard(loss)
    loss.backward()
    optimizer.step()
    return loss.detach()


class MetricSums:
    """Per-note sums of Table 1's metrics (and optionally the embedding MSE) over a split.

    Sums and a count, so that workers can add theirs with one all-reduce and the
    mean is weighted by note, not by batch.
    """

    KEYS = ("wav_mse", "spectral_l1", "embedding_mse")

    def __init__(self):
        self.sums = {k: 0.0 for k in self.KEYS}
        self.count = 0

    def add(self, output: torch.Tensor, target: torch.Tensor, n_fft: int, hop_length: int,
            embedding_mse: torch.Tensor | None = None) -> None:
        """Add a batch. Args: output, target (B, T); embedding_mse (B,) or None."""
        metrics = table1_metrics(output.float(), target.float(), n_fft, hop_length)
        self.sums["wav_mse"] += float(metrics["wav_mse"].sum())
        self.sums["spectral_l1"] += float(metrics["spectral_l1"].sum())
        if embedding_mse is not None:
            self.sums["embedding_mse"] += float(embedding_mse.sum())
        self.count += len(output)

    def as_tensor(self) -> torch.Tensor:
        """(4,) float64: the three sums and the count (what gets all-reduced)."""
        return torch.tensor([*(self.sums[k] for k in self.KEYS), self.count], dtype=torch.float64)

    @staticmethod
    def means(total: torch.Tensor, prefix: str, with_embedding: bool = False) -> dict[str, float]:
        """``{prefix_wav_mse: ..., prefix_spectral_l1: ...}`` from an (all-reduced) :meth:`as_tensor`.

        Returns an empty dict when the split held no notes.
        """
        count = float(total[-1])
        if count == 0:
            return {}
        keys = MetricSums.KEYS if with_embedding else MetricSums.KEYS[:2]
        return {f"{prefix}_{k}": float(total[i]) / count for i, k in enumerate(MetricSums.KEYS) if k in keys}

