"""How a preset sounds, in a few numbers: the fingerprint that de-duplication compares.

A preset is played at three reference notes (:func:`reference_pitches`:
C3, C4 and C5 at velocity 100, or the nearest playable keys), and each note
becomes its long-term mel spectrum in dB (:data:`NUM_MELS` bands: timbre) and its
frame-energy envelope in dB (:data:`NUM_ENV_FRAMES` frames of 100 ms: attack,
decay, sustain, release). :func:`distance` matches the two presets' overall
levels, then takes the largest mean absolute difference in dB, over the three
notes and the two views; two presets lie
within :data:`TOLERANCE_DB` of each other when they sound the same
(docs/soundfont.md, "A corpus from every installed SoundFont", has the
measurements behind it). Pure numpy: no FluidSynth, no Ray.
"""
from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Sequence

import numpy as np

from .. import nsynth

REFERENCE_PITCHES = (48, 60, 72)
REFERENCE_VELOCITY = 100
NUM_MELS = 48
N_FFT = 2048
HOP = 512
ENV_FRAME = nsynth.SAMPLE_RATE // 10            # 100 ms
NUM_ENV_FRAMES = nsynth.NUM_FRAMES // ENV_FRAME  # 40
# Levels are floored here before comparing: differences below it are inaudible under
# anything else the note holds, and a silent band must not weigh as a large difference.
FLOOR_DB = -100.0
AUDIBLE_DB = -80.0                               # envelope frames compared for the level offset
SPAN_DB = 80.0                                   # mel bands more than this under the loudest are floored
# Two presets are the same instrument when, their levels matched, every reference note's
# spectrum and envelope lie within this many dB on average. See docs/soundfont.md for
# the measurements behind it.
TOLERANCE_DB = 2.0


def reference_pitches(pitches: Sequence[int]) -> tuple[int, ...]:
    """The reference keys of a preset rendered at ``pitches``: each of C3, C4, C5, or the nearest one it has."""
    keys = sorted(set(int(p) for p in pitches))
    if not keys:
        raise ValueError("a preset without pitches has no reference notes")
    return tuple(min(keys, key=lambda k: (abs(k - r), k)) for r in REFERENCE_PITCHES)


@lru_cache(maxsize=1)
def _mel_matrix() -> np.ndarray:
    # Triangular filters evenly spaced on the HTK mel scale, 30 Hz to 8 kHz: (NUM_MELS, N_FFT // 2 + 1).
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(30.0), mel(nsynth.SAMPLE_RATE / 2), NUM_MELS + 2))
    freqs = np.linspace(0, nsynth.SAMPLE_RATE / 2, N_FFT // 2 + 1)
    lower = (freqs[None, :] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    upper = (edges[2:, None] - freqs[None, :]) / (edges[2:, None] - edges[1:-1, None])
    return np.maximum(0.0, np.minimum(lower, upper))


def note_fingerprint(audio: np.ndarray) -> np.ndarray:
    """One note's long-term mel spectrum and envelope in dB.

    Args:
        audio: (64000,) float audio in [-1, 1].
    Returns:
        (NUM_MELS + NUM_ENV_FRAMES,) float32: the mel bands in dB (floored at
        :data:`SPAN_DB` under the loudest and at :data:`FLOOR_DB`), then the
        100 ms frames' RMS in dBFS (floored at :data:`FLOOR_DB`).
    """
    x = np.asarray(audio, dtype=np.float64)
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * np.hanning(N_FFT), axis=1)) ** 2
    mel = _mel_matrix() @ power.mean(axis=0) / N_FFT
    mel_db = 10 * np.log10(np.maximum(mel, 1e-20))
    mel_db = np.maximum(mel_db, max(mel_db.max() - SPAN_DB, FLOOR_DB))
    env = np.sqrt(np.mean(x[:NUM_ENV_FRAMES * ENV_FRAME].reshape(NUM_ENV_FRAMES, ENV_FRAME) ** 2, axis=1))
    env_db = np.maximum(20 * np.log10(np.maximum(env, 1e-20)), FLOOR_DB)
    return np.concatenate([mel_db, env_db]).astype(np.float32)


def distances(one: np.ndarray, many: np.ndarray) -> np.ndarray:
    """How far presets' fingerprints lie from ``one``'s, in dB, once their overall levels are matched.

    The level offset is the median difference of the envelopes over the frames
    where both sound (above :data:`AUDIBLE_DB`): the same samples played louder
    (a mono mix-down, a preset's attenuation) are the same instrument. Then the
    distance is the largest, over the notes and over the spectrum and the
    envelope, of the mean absolute difference in dB.

    Args:
        one: (notes, NUM_MELS + NUM_ENV_FRAMES), the fingerprint of one preset.
        many: (N, notes, NUM_MELS + NUM_ENV_FRAMES), of N presets at the same reference keys.
    Returns:
        (N,) distances in dB.
    """
    many = np.asarray(many, dtype=np.float64)
    if len(many) == 0:
        return np.zeros(0)
    one = np.asarray(one, dtype=np.float64)[None]
    env_a, env_b = one[:, :, NUM_MELS:], many[:, :, NUM_MELS:]
    both = (env_a > AUDIBLE_DB) & (env_b > AUDIBLE_DB)
    gap = np.where(both, env_a - env_b, np.nan).reshape(len(many), -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)          # all-NaN rows: no frame sounds in both
        offset = np.nan_to_num(np.nanmedian(gap, axis=1))
    # Levels at the floor (silence: the release's end, a band with nothing in it) stay there.
    shifted = np.where(many <= FLOOR_DB, FLOOR_DB, np.maximum(many + offset[:, None, None], FLOOR_DB))
    diff = np.abs(one - shifted)
    return np.maximum(diff[:, :, :NUM_MELS].mean(axis=2).max(axis=1),
                      diff[:, :, NUM_MELS:].mean(axis=2).max(axis=1))


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """:func:`distances` between two fingerprints (notes, D); inf when their shapes differ."""
    if np.shape(a) != np.shape(b):
        return math.inf
    return float(distances(a, np.asarray(b)[None])[0])
