"""Timbre measures blind to phase and vibrato, and the nearest-key sampler baseline.

The per-frame spectral L1 rewards a smooth average and punishes a real note's noise and
vibrato: any other recording of the same instrument misaligns frame by frame. What a listener
hears as the instrument's colour is closer to the note's long-term spectrum (power averaged
over the whole note, in mel bands) and its envelope (energy over time). This module measures
both against the real note, and builds what a user with the training notes would pick
instead of a model: the same instrument and velocity at the nearest trained pitch, resampled
to the wanted pitch as a sampler stretches its nearest key.

Pure numpy and torch (and librosa's mel filters and soxr resampler): no Ray, no project I/O.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import torch

from .dsp import stft_magnitude
from .nsynth import SAMPLE_RATE

# The long-term spectrum: 64 Slaney mel bands from 0 Hz to Nyquist over a 1,024-point STFT
# (64 ms) every 256 samples, the power averaged over all of the note's frames.
LTS_BANDS = 64
LTS_N_FFT = 1024
LTS_HOP = 256
# Both spectra are floored this far under the real note's loudest band before their mean
# absolute difference: under it a band is inaudible beside the loudest, whatever its level.
LTS_FLOOR_DB = 80.0
# The loud bands: those within this of the real note's loudest band (the partials' balance).
LTS_LOUD_DB = 40.0
# The envelope: frame energy (same STFT) in dB, floored this far under the real note's
# loudest frame.
ENVELOPE_FLOOR_DB = 60.0
# A power floor under everything 16-bit audio holds, so that digital silence has a finite dB.
POWER_EPS = 1e-12

DESCRIPTION = (
    f"long-term spectrum distance (lts_db): each note's power averaged over all its STFT frames "
    f"(n_fft {LTS_N_FFT}, hop {LTS_HOP}, Hann) in {LTS_BANDS} Slaney mel bands (0-8 kHz), in dB; "
    f"both notes floored {LTS_FLOOR_DB:g} dB under the real note's loudest band; the mean |dB| "
    f"difference over all bands. lts_loud_db: the same over the bands within {LTS_LOUD_DB:g} dB of "
    f"the real note's loudest (both floored there). envelope_db: each frame's energy in dB, floored "
    f"{ENVELOPE_FLOOR_DB:g} dB under the real note's loudest frame, mean |dB| over frames. Blind to "
    f"phase and to vibrato; 0 for a note against itself.")


@functools.lru_cache(maxsize=4)
def _mel_filters(sample_rate: int, n_fft: int, bands: int) -> torch.Tensor:
    import librosa

    fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=bands, fmin=0.0, fmax=sample_rate / 2,
                             htk=False, norm="slaney")
    return torch.from_numpy(fb.astype(np.float64))


def _power(wav: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(B, bins, frames) float64 STFT power of (B, T) or (T,) waveforms."""
    x = wav if torch.is_tensor(wav) else torch.as_tensor(np.asarray(wav, dtype=np.float32))
    x = x.detach().cpu().float()
    if x.dim() == 1:
        x = x.unsqueeze(0)
    return stft_magnitude(x, LTS_N_FFT, LTS_HOP).double().square()


def long_term_spectrum(wav: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE,
                       power: torch.Tensor | None = None) -> np.ndarray:
    """Each note's long-term spectrum: mel-band power averaged over time, in dB.

    Args:
        wav: (B, T) or (T,) waveforms in [-1, 1].
        power: their STFT power, when already computed (:func:`timbre_metrics`).
    Returns:
        (B, LTS_BANDS) float64 dB (power 1e-12 is -120 dB).
    """
    power = (_power(wav) if power is None else power).mean(-1)          # (B, bins)
    mel = power @ _mel_filters(sample_rate, LTS_N_FFT, LTS_BANDS).T     # (B, bands)
    return (10.0 * torch.log10(mel + POWER_EPS)).numpy()


def frame_energy_db(wav: np.ndarray | torch.Tensor, power: torch.Tensor | None = None) -> np.ndarray:
    """(B, frames) each STFT frame's energy in dB (the envelope)."""
    power = _power(wav) if power is None else power
    return (10.0 * torch.log10(power.sum(1) + POWER_EPS)).numpy()


def spectrum_distance(generated_db: np.ndarray, real_db: np.ndarray, floor_db: float = LTS_FLOOR_DB,
                      loud_only: bool = False) -> np.ndarray:
    """Mean |dB| between two sets of spectra (or envelopes), both floored under the real peak.

    Args:
        generated_db, real_db: (B, K) in dB (:func:`long_term_spectrum`, :func:`frame_energy_db`).
        floor_db: both are raised to at least ``max(real) - floor_db``.
        loud_only: average over the entries of the real one above that floor alone.
    Returns:
        (B,) float64.
    """
    generated_db, real_db = np.atleast_2d(generated_db), np.atleast_2d(real_db)
    floor = real_db.max(-1, keepdims=True) - floor_db
    diff = np.abs(np.maximum(generated_db, floor) - np.maximum(real_db, floor))
    if not loud_only:
        return diff.mean(-1)
    loud = real_db > floor
    return (diff * loud).sum(-1) / np.maximum(loud.sum(-1), 1)


def timbre_metrics(generated: np.ndarray | torch.Tensor, real: np.ndarray | torch.Tensor,
                   sample_rate: int = SAMPLE_RATE) -> dict[str, np.ndarray]:
    """The timbre distances of each generated note from its real note.

    Args:
        generated, real: (B, T) waveforms.
    Returns:
        ``lts_db`` (all bands), ``lts_loud_db`` (the bands within :data:`LTS_LOUD_DB` of the
        real note's loudest) and ``envelope_db``: (B,) float64, 0 for a note against itself.
    """
    # One STFT per side serves both the spectrum and the envelope.
    gen_power, real_power = _power(generated), _power(real)
    gen_lts = long_term_spectrum(generated, sample_rate, gen_power)
    real_lts = long_term_spectrum(real, sample_rate, real_power)
    return {
        "lts_db": spectrum_distance(gen_lts, real_lts, LTS_FLOOR_DB),
        "lts_loud_db": spectrum_distance(gen_lts, real_lts, LTS_LOUD_DB, loud_only=True),
        "envelope_db": spectrum_distance(frame_energy_db(generated, gen_power), frame_energy_db(real, real_power),
                                         ENVELOPE_FLOOR_DB),
    }


# --------------------------------------------------------------------------- nearest-key baseline

def nearest_pitch(pitch: int, available: Sequence[int]) -> int | None:
    """The pitch of ``available`` nearest ``pitch``, never ``pitch`` itself; on a tie the lower
    one (a sampler stretching a key up keeps more of its band). None when there is none."""
    candidates = sorted({int(p) for p in available} - {int(pitch)})
    if not candidates:
        return None
    return min(candidates, key=lambda p: (abs(p - int(pitch)), p))


def shift_pitch(wav: np.ndarray, semitones: float, length: int | None = None,
                sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Play a note ``semitones`` higher as a sampler does: resampled (shorter when higher),
    then cut or zero-padded to ``length`` samples (default: its own length).

    Uses soxr's high-quality resampler (through librosa).

    Args:
        wav: (T,) waveform.
    Returns:
        (length,) float32.
    """
    import librosa

    wav = np.asarray(wav, dtype=np.float32)
    length = len(wav) if length is None else int(length)
    if semitones:
        ratio = 2.0 ** (semitones / 12.0)
        # Read at ``ratio`` times the speed: as if recorded at sample_rate * ratio.
        wav = librosa.resample(wav, orig_sr=sample_rate * ratio, target_sr=sample_rate, res_type="soxr_hq")
    out = np.zeros(length, dtype=np.float32)
    out[:min(length, len(wav))] = wav[:length]
    return out


def nearest_key_plan(targets: Sequence[tuple[str, int, int]],
                     train_keys: Sequence[tuple[str, int, int]]) -> list[tuple[str, int, int] | None]:
    """For each target (instrument, pitch, velocity), the training key a sampler would stretch.

    The same instrument and velocity at the nearest pitch of ``train_keys`` other than the
    target's own (:func:`nearest_pitch`); None where the instrument has no other pitch at that
    velocity in the training split.
    """
    pitches: dict[tuple[str, int], list[int]] = {}
    for instrument, pitch, velocity in train_keys:
        pitches.setdefault((str(instrument), int(velocity)), []).append(int(pitch))
    plan: list[tuple[str, int, int] | None] = []
    for instrument, pitch, velocity in targets:
        source = nearest_pitch(int(pitch), pitches.get((str(instrument), int(velocity)), ()))
        plan.append(None if source is None else (str(instrument), source, int(velocity)))
    return plan
