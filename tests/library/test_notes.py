"""The shape of a note: sustain or decay, f0, a loop that joins without a click, the release, the smpl chunk."""
import io

import numpy as np
import pytest
import soundfile as sf

from sing_ray.library import notes

from conftest import tone

SR = notes.SAMPLE_RATE
T = np.arange(64000) / SR


def _harmonic(pitch, env, seed=0):
    rng = np.random.default_rng(seed)
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    wave = sum(np.sin(2 * np.pi * f0 * k * T + rng.uniform(0, 6.28)) / k for k in range(1, 6) if f0 * k < SR / 2)
    return (0.3 * env * wave).astype(np.float32)


def _looped(y, shape, repeats=4):
    """What a sampler plays while the key is held: up to the loop end, then the loop again and again."""
    loop = y[shape.loop_start: shape.loop_end + 1]
    return np.concatenate([y[: shape.loop_end + 1]] + [loop] * repeats)


@pytest.mark.parametrize("pitch", [33, 57, 69, 96])
def test_a_held_harmonic_note_sustains_and_loops_a_whole_number_of_periods(pitch):
    x = tone(pitch, 100).astype(np.float32) / 32768      # held 3 s, then -69.5 dB/s
    y, shape = notes.analyse(x, pitch)
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    assert shape.sustain and abs(1200 * np.log2(shape.f0 / f0)) < 5
    assert 0.3 * SR < shape.loop_start < shape.loop_end < notes.LOOP_END_S * SR
    length = shape.loop_end - shape.loop_start + 1
    assert length >= notes.MIN_LOOP_S * SR
    periods = length * f0 / SR
    assert abs(periods - round(periods)) * SR / f0 <= 1.0          # within one sample of whole periods
    assert shape.loop_join <= 0
    # Looping it four more times keeps the level and adds no click.
    played = _looped(y, shape)
    env, own = notes.envelope_db(played, 1024)[8:], notes.envelope_db(x[: 3 * SR], 1024)[8:]
    assert env.max() <= own.max() + 0.2 and env.min() >= own.min() - 0.2
    assert np.abs(np.diff(played, 2)).max() <= 1.05 * np.abs(np.diff(y[: shape.loop_end + 1], 2)).max()
    # The release measured on the tail: 60 dB at 69.5 dB/s.
    assert shape.release == pytest.approx(60 / (8 * 20 / np.log(10)), rel=0.1)
    assert np.array_equal(y[: shape.loop_end + 1 - int(shape.loop_crossfade * SR)],
                          x[: shape.loop_end + 1 - int(shape.loop_crossfade * SR)])


def test_a_decaying_note_has_no_loop():
    x = _harmonic(48, np.exp(-2.5 * T))                    # -22 dB/s from the start: a plucked string
    y, shape = notes.analyse(x, 48)
    assert not shape.sustain and (shape.loop_start, shape.loop_end) == (-1, -1)
    assert np.array_equal(y, x)


def test_noise_sustains_without_a_pitch_and_gets_a_crossfade():
    rng = np.random.default_rng(0)
    env = np.where(T < 3, 1.0, np.exp(-(T - 3) * 20))
    x = (0.1 * env * rng.standard_normal(len(T))).astype(np.float32)
    y, shape = notes.analyse(x, 60)
    assert shape.sustain and shape.f0 == 0
    assert shape.loop_crossfade >= 0.05                     # unrelated ends: a long, equal-power fade
    played = _looped(y, shape)
    env_db = notes.envelope_db(played)[40:]
    assert env_db.max() - env_db.min() < 4.0               # no hole or bump at the joins
    assert shape.release == pytest.approx(60 / (20 * 20 / np.log(10)), rel=0.15)


def test_silence_and_a_note_that_never_releases():
    y, shape = notes.analyse(np.zeros(64000, np.float32), 60)
    assert not shape.sustain and shape.loop_start == -1
    held = _harmonic(60, np.ones_like(T))                  # the model ignored the note-off
    assert notes.analyse(held, 60)[1].release == notes.RELEASE_RANGE_S[1]


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_encode_writes_the_loop_into_the_wav_smpl_chunk(fmt):
    x = tone(60, 100).astype(np.float32) / 32768
    data, pcm, shape = notes.encode(x, 60, fmt)
    back, sr = sf.read(io.BytesIO(data), dtype="int16")
    assert sr == SR and np.array_equal(back, pcm)           # samplers and libsndfile still read it
    smpl = notes.read_smpl(data) if fmt == "wav" else None
    if fmt == "wav":
        assert smpl == {"unity_note": 60, "loops": [(shape.loop_start, shape.loop_end)]}
        # A second chunk replaces the first.
        again = notes.add_smpl(data, 61, -1, -1)
        assert notes.read_smpl(again) == {"unity_note": 61, "loops": []} and len(again) == len(data) - 24
        assert np.array_equal(sf.read(io.BytesIO(again), dtype="int16")[0], pcm)


def test_a_malformed_smpl_chunk_reads_as_none_or_only_the_loops_it_holds():
    head = b"RIFF\x00\x00\x00\x00WAVE"
    claims_two = head + b"smpl" + (36).to_bytes(4, "little") + bytes(28) + (2).to_bytes(4, "little") + bytes(4)
    assert notes.read_smpl(claims_two) == {"unity_note": 0, "loops": []}
    assert notes.read_smpl(b"not a wav file") is None
    cut = head + b"smpl" + (60).to_bytes(4, "little") + bytes(10)
    assert notes.read_smpl(cut) is None
