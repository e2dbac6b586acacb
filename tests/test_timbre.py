"""Timbre distances and the nearest-key sampler on signals whose answers are known."""
import numpy as np
import pytest

from sing_ray import timbre
from sing_ray.nsynth import NUM_FRAMES, SAMPLE_RATE


def noise(seed: int = 0, amp: float = 0.1) -> np.ndarray:
    """A 4 s white-noise note held at one level: every mel band and frame far above the floors."""
    return (amp * np.random.default_rng(seed).standard_normal(NUM_FRAMES)).astype(np.float32)


def harmonic(pitch: int, seed: int = 0) -> np.ndarray:
    """A 4 s harmonic note, held 3 s then decaying (its high bands and its tail reach the floors)."""
    rng = np.random.default_rng(seed)
    t = np.arange(NUM_FRAMES) / SAMPLE_RATE
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    wave = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k
               for k in range(1, 6) if f0 * k < SAMPLE_RATE / 2)
    env = np.where(t < 3.0, 1.0, np.exp(-(t - 3.0) * 8))
    return (0.2 * env * wave).astype(np.float32)


def test_a_note_against_itself_is_zero_on_all_three():
    notes = np.stack([harmonic(60), harmonic(45, seed=1), noise()])
    m = timbre.timbre_metrics(notes, notes)
    for key in ("lts_db", "lts_loud_db", "envelope_db"):
        assert m[key].shape == (3,) and np.all(m[key] == 0.0), key


@pytest.mark.parametrize("gain_db", [-6.0, -3.0, 2.0, 10.0])
def test_a_copy_scaled_by_g_db_is_g_db_away(gain_db):
    real = noise()
    m = timbre.timbre_metrics(real[None] * 10 ** (gain_db / 20), real[None])
    # Every band and frame of the noise lies far above the floors: the whole shift shows.
    assert m["lts_db"][0] == pytest.approx(abs(gain_db), abs=1e-3)
    assert m["lts_loud_db"][0] == pytest.approx(abs(gain_db), abs=1e-3)
    assert m["envelope_db"][0] == pytest.approx(abs(gain_db), abs=1e-3)


def test_a_quieter_harmonic_note_loses_only_what_the_floor_cuts():
    real = harmonic(57)
    lts_real = timbre.long_term_spectrum(real)[0]
    quieter = timbre.long_term_spectrum(real * 10 ** (-6 / 20))[0]
    # The spectrum moves down by 6 dB in every band (a level change is no change of colour).
    assert np.allclose(quieter - lts_real, -6.0, atol=1e-3)
    m = timbre.timbre_metrics(real[None] * 10 ** (-6 / 20), real[None])
    # The bands within 6 dB of the floor count for less than 6 dB, the others for 6 dB.
    floor = lts_real.max() - timbre.LTS_FLOOR_DB
    expected = np.mean(np.clip(lts_real - floor, 0, 6.0))
    assert m["lts_db"][0] == pytest.approx(expected, abs=1e-3)
    assert 0 < m["lts_db"][0] <= 6.0 + 1e-6


def test_a_filter_tilts_the_bands_by_its_response():
    """y[n] = x[n] + 0.5 x[n-1]: |H|^2 = 1.25 + cos(w), +3.5 dB at 0 Hz down to -6 dB at 8 kHz."""
    x = noise(seed=3)
    y = x.copy()
    y[1:] += 0.5 * x[:-1]
    diff = timbre.long_term_spectrum(y)[0] - timbre.long_term_spectrum(x)[0]
    # Expected per band: the mel weights' average of |H|^2 over the FFT bins (white input).
    fb = timbre._mel_filters(SAMPLE_RATE, timbre.LTS_N_FFT, timbre.LTS_BANDS).numpy()
    w = 2 * np.pi * np.arange(timbre.LTS_N_FFT // 2 + 1) / timbre.LTS_N_FFT
    expected = 10 * np.log10(fb @ (1.25 + np.cos(w)) / fb.sum(1))
    assert np.allclose(diff, expected, atol=0.3)
    assert diff[0] == pytest.approx(3.5, abs=0.3) and diff[-1] == pytest.approx(-5.8, abs=0.3)
    assert timbre.timbre_metrics(y[None], x[None])["lts_db"][0] == pytest.approx(np.abs(expected).mean(), abs=0.2)


def test_silence_against_a_note_sits_on_the_floors():
    real = noise()
    m = timbre.timbre_metrics(np.zeros_like(real)[None], real[None])
    # Silence is raised to the floor: every band is LTS_FLOOR_DB under a flat spectrum's level.
    lts = timbre.long_term_spectrum(real)[0]
    assert m["lts_db"][0] == pytest.approx(np.mean(lts - (lts.max() - timbre.LTS_FLOOR_DB)), abs=1e-6)
    assert m["envelope_db"][0] == pytest.approx(timbre.ENVELOPE_FLOOR_DB, abs=1.5)


def _f0(wav: np.ndarray) -> float:
    """The frequency of the FFT's peak (a Hann window, 0.25 Hz bins with zero padding)."""
    n = 4 * len(wav)
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav)), n))
    return float(np.argmax(spectrum) * SAMPLE_RATE / n)


def test_shift_by_an_octave_doubles_the_frequency_and_halves_the_duration():
    t = np.arange(NUM_FRAMES) / SAMPLE_RATE
    held = 2 * SAMPLE_RATE                                       # 2 s of sine, then silence
    wav = np.where(t < 2.0, 0.5 * np.sin(2 * np.pi * 440.0 * t), 0.0).astype(np.float32)
    up = timbre.shift_pitch(wav, 12, NUM_FRAMES)
    assert up.shape == (NUM_FRAMES,) and up.dtype == np.float32
    assert _f0(up[:held // 2]) == pytest.approx(880.0, abs=1.0)
    # 2 s of sound played twice as fast lasts 1 s; the rest is padding.
    loud = np.flatnonzero(np.abs(up) > 0.01)
    assert loud[-1] / SAMPLE_RATE == pytest.approx(1.0, abs=0.01)
    assert np.max(np.abs(up[held // 2 + 200:])) < 1e-3
    # A semitone down: the frequency falls by 2^(1/12), and the note is cut to the length asked.
    down = timbre.shift_pitch(wav, -1, 1000 + held // 2)
    assert down.shape == (1000 + held // 2,)
    assert _f0(down) == pytest.approx(440.0 / 2 ** (1 / 12), abs=1.0)
    assert np.array_equal(timbre.shift_pitch(wav, 0), wav)


def test_the_plan_never_uses_the_note_it_is_scored_against():
    train = [("guitar_acoustic_000", p, v) for p in (48, 50, 52, 55) for v in (25, 127)]
    train += [("flute_synthetic_001", 60, 127)]
    targets = [("guitar_acoustic_000", 50, 127),        # in the train keys itself: another pitch
               ("guitar_acoustic_000", 51, 25),         # a tie between 50 and 52: the lower
               ("guitar_acoustic_000", 54, 127),        # nearest above
               ("guitar_acoustic_000", 60, 75),         # no training note at that velocity
               ("flute_synthetic_001", 60, 127),        # its only training pitch is its own
               ("brass_acoustic_000", 60, 127)]         # an instrument not in the training split
    plan = timbre.nearest_key_plan(targets, train)
    assert plan == [("guitar_acoustic_000", 48, 127), ("guitar_acoustic_000", 50, 25),
                    ("guitar_acoustic_000", 55, 127), None, None, None]
    # Every source is a training key of the target's instrument and velocity.
    assert all(s in train and s[0] == t[0] and s[2] == t[2] for t, s in zip(targets, plan) if s)
    assert timbre.nearest_pitch(50, [50]) is None and timbre.nearest_pitch(50, [40, 61]) == 40
