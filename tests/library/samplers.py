"""Helpers for the sampler tests: play an exported library in a real sampler and measure the sound.

- :func:`play_sfz` (sfizz, through ``pysfizz``) and :func:`play_sf2` (FluidSynth, through
  ``pyfluidsynth``) play one note of a file: key held ``held_s``, released, rendered to ``total_s``.
- :func:`level_db`, :func:`peak_db`, :func:`first_time_below`: loudness over time, from the RMS
  of frames of :data:`FRAME` samples every :data:`HOP`.
- :func:`f0_hz`: the median pitch of a stretch; :func:`resampled_correlation`: how closely a
  played note reproduces its sample.
- :func:`synthetic_note`: a stand-in for a rendered note, so the tests need no model.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import time
from fractions import Fraction

import numpy as np

SAMPLE_RATE = 16000
NUM_FRAMES = 64000
HELD_S = 3.0

FRAME = 1024
HOP = 256
# FluidSynth's master gain in play_sf2: fixed, so levels compare between calls.
SF2_GAIN = 1.0


def play_sfz(path, pitch: int, velocity: int, held_s: float, total_s: float,
             sample_rate: int = 48000) -> np.ndarray:
    """One note of an SFZ file played by sfizz: mono float (mean of left and right).

    Raises:
        AssertionError: sfizz cannot load the file (or it has no regions).
    """
    import pysfizz

    synth = pysfizz.Synth(sample_rate)
    try:
        # sfizz's own messages go to file descriptor 2; pysfizz's quiet mode needs sys.stderr to
        # have one, which pytest's capsys takes away: silence the descriptor here instead.
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        try:
            loaded = synth.load_sfz_file(str(path), quiet=False)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
    except (FileNotFoundError, ValueError) as err:
        raise AssertionError(f"sfizz cannot load {path}: {err}") from None
    if not loaded:
        raise AssertionError(f"sfizz cannot load {path} (or it has no regions)")
    _prime_sfizz(synth, int(pitch), int(velocity), sample_rate)
    stereo = synth.render_note(int(pitch), int(velocity), float(held_s), float(total_s))
    return np.asarray(stereo, dtype=np.float64).mean(axis=0)


def _prime_sfizz(synth, pitch: int, velocity: int, sample_rate: int, tries: int = 50) -> None:
    """Have sfizz read the note's whole sample before the note that is measured.

    sfizz keeps a sample's first 8,192 frames in memory and streams the rest from a
    background thread; pysfizz's offline rendering does not wait for it, so a note
    rendered before the file is read stops after 0.5 s (seen in 2 of 30 runs). The key
    is played until it still sounds after 1.5 s, then silenced.
    """
    raw = synth._synth
    blocks = int(1.5 * sample_rate / synth.get_block_size()) + 1
    for _ in range(tries):
        raw.note_on(0, pitch, velocity)
        for _ in range(blocks):
            raw.render_block()
        sounding = raw.get_num_active_voices() > 0
        raw.all_sound_off()
        for _ in range(8):
            raw.render_block()
        if sounding:
            return
        time.sleep(0.02)
    raise AssertionError(f"sfizz never read the sample of key {pitch} (its note stops after 0.5 s)")


def _fluidsynth():
    import fluidsynth

    lib = getattr(fluidsynth, "_fl", None) or ctypes.CDLL(ctypes.util.find_library("fluidsynth"))
    lib.fluid_synth_write_float.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                            ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                            ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.fluid_synth_write_float.restype = ctypes.c_int
    return fluidsynth, lib


def play_sf2(path, preset: int, pitch: int, velocity: int, held_s: float, total_s: float,
             sample_rate: int = 44100, bank: int = 0) -> np.ndarray:
    """One note of a SoundFont played by FluidSynth: mono float (mean of left and right).

    Reverb and chorus off, master gain :data:`SF2_GAIN`; a fresh synthesizer per call, so
    nothing carries over from an earlier note. Note-on and note-off take effect on
    FluidSynth's 64-frame block boundaries.

    Raises:
        AssertionError: FluidSynth cannot load the file or has no such preset.
    """
    fluidsynth, lib = _fluidsynth()
    synth = fluidsynth.Synth(gain=float(SF2_GAIN), samplerate=float(sample_rate), channels=16,
                             **{"synth.reverb.active": 0, "synth.chorus.active": 0})
    try:
        sfid = synth.sfload(str(path))
        if sfid < 0:
            raise AssertionError(f"FluidSynth cannot load {path}")
        if synth.program_select(0, sfid, bank, preset) != 0:
            raise AssertionError(f"{path} has no preset {bank}:{preset}")
        total = int(round(total_s * sample_rate))
        held = min(int(round(held_s * sample_rate)), total)
        out = np.zeros((total, 2), dtype=np.float32)

        def write(start, stop):
            if stop > start:
                ptr = out.ctypes.data + 8 * start
                if lib.fluid_synth_write_float(synth.synth, stop - start, ptr, 0, 2, ptr, 1, 2) != 0:
                    raise RuntimeError("FluidSynth failed to render")

        synth.noteon(0, int(pitch), int(velocity))
        write(0, held)
        synth.noteoff(0, int(pitch))
        write(held, total)
    finally:
        synth.delete()
    return out.mean(axis=1, dtype=np.float64)


def frame_db(x: np.ndarray) -> np.ndarray:
    """RMS level in dB of frames of :data:`FRAME` samples every :data:`HOP` (frame ``i`` starts at ``i * HOP``)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < FRAME:
        x = np.pad(x, (0, FRAME - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME)[::HOP]
    return 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-20)


def level_db(x: np.ndarray, sample_rate: int, at_s: float, window_s: float = 0.1) -> float:
    """RMS level in dB of the ``window_s`` around ``at_s``."""
    half = int(round(window_s * sample_rate / 2))
    centre = int(round(at_s * sample_rate))
    seg = np.asarray(x[max(0, centre - half):centre + half], dtype=np.float64)
    return float(10 * np.log10(np.mean(seg ** 2) + 1e-20)) if len(seg) else -200.0


def peak_db(x: np.ndarray) -> float:
    """The loudest frame's RMS level in dB (see :func:`frame_db`)."""
    return float(frame_db(x).max())


def first_time_below(x: np.ndarray, sample_rate: int, db: float, after_s: float = 0.0) -> float:
    """The first time (s) after ``after_s`` from which every frame's RMS level stays below ``db``.

    ``math.inf`` if the last frame is still at or above ``db``.
    """
    levels = frame_db(x)
    first = int(math.ceil(after_s * sample_rate / HOP))
    loud = np.flatnonzero(levels[first:] >= db)
    if len(loud) and first + loud[-1] == len(levels) - 1:
        return math.inf
    index = first + (loud[-1] + 1 if len(loud) else 0)
    return index * HOP / sample_rate


def f0_hz(x: np.ndarray, sample_rate: int, start_s: float, end_s: float) -> float:
    """Median fundamental frequency (librosa's YIN, 40-2000 Hz) over ``start_s``..``end_s``."""
    import librosa

    seg = np.asarray(x[int(start_s * sample_rate):int(end_s * sample_rate)], dtype=np.float64)
    frame = 2048 if sample_rate <= 24000 else 4096
    return float(np.median(librosa.yin(seg, fmin=40, fmax=2000, sr=sample_rate, frame_length=frame)))


def resampled_correlation(played: np.ndarray, played_sr: int, sample_int16: np.ndarray,
                          seconds: float = 2.0, max_lag_s: float = 0.005) -> float:
    """Normalised correlation of a played note with its sample over the first ``seconds``.

    The sampler's output is resampled to 16 kHz and shifted by the lag (within
    ``max_lag_s`` either way) that matches best.
    """
    from scipy.signal import correlate, resample_poly

    ratio = Fraction(SAMPLE_RATE, int(played_sr))
    y = resample_poly(np.asarray(played, dtype=np.float64), ratio.numerator, ratio.denominator)
    a = np.asarray(sample_int16, dtype=np.float64)[:int(seconds * SAMPLE_RATE)] / 32768.0
    n, lags = len(a), int(max_lag_s * SAMPLE_RATE)
    # y from -lags to n + lags, zeros outside it: the dot product at each lag in one FFT.
    shifted = np.zeros(n + 2 * lags)
    seg = y[:n + lags]
    shifted[lags:lags + len(seg)] = seg
    dots = correlate(shifted, a, mode="valid", method="fft")
    energy = np.concatenate([[0.0], np.cumsum(shifted ** 2)])
    window_energy = energy[n:n + 2 * lags + 1] - energy[:2 * lags + 1]
    norms = np.sqrt(np.dot(a, a) * np.maximum(window_energy, 1e-30))
    return float(np.max(dots / norms))


def midi_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12)


def synthetic_note(pitch: int, velocity: int = 100, sustain: bool = True,
                   held_s: float = HELD_S, decay_db_per_s: float = 60.0) -> np.ndarray:
    """A stand-in for a rendered note: a harmonic tone, 16 kHz, 64,000 int16 frames.

    Args:
        pitch: MIDI pitch (equal temperament, A4 = 440 Hz).
        velocity: sets the amplitude (0.7 of full scale at 127, proportionally less below).
        sustain: held at a constant level for ``held_s`` seconds, then decaying by
            ``decay_db_per_s`` (a sustaining instrument); False: decaying by
            ``decay_db_per_s`` from the start (a plucked or struck one).
    """
    t = np.arange(NUM_FRAMES) / SAMPLE_RATE
    f0 = midi_hz(pitch)
    rng = np.random.default_rng(pitch)
    tone = np.zeros(NUM_FRAMES)
    for k in range(1, int(7000 / f0) + 1):
        tone += np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k
    tone /= np.abs(tone).max()
    onset = np.minimum(t / 0.01, 1.0)
    decay_from = held_s if sustain else 0.0
    envelope = onset * 10 ** (-decay_db_per_s * np.maximum(t - decay_from, 0) / 20)
    amplitude = 0.7 * velocity / 127
    return np.round(tone * envelope * amplitude * 32767).astype(np.int16)
