"""A library written by sing-ray, played in real samplers: sfizz plays the .sfz, FluidSynth the .sf2.

The notes go the way rendered notes go (analysed, crossfaded, encoded with a smpl chunk,
mapped, written by the library writer); they are synthetic, so the checks need no model:
a sustaining instrument (held level, then released) and a decaying one (plucked).
"""
from __future__ import annotations

import numpy as np
import pytest

import soundfile as sf

from sing_ray.library import format_module, notes
from sing_ray.library.mapping import InstrumentMap, Zone
from sing_ray.library.writer import write_library_files
from sing_ray.audio import encode_note, note_stats
from sing_ray.data.storage import resolve

from .samplers import (first_time_below, f0_hz, level_db, peak_db, play_sf2, play_sfz, resampled_correlation,
                       synthetic_note)

PITCHES = (48, 55, 60)
VELOCITY = 127
INSTRUMENTS = {"organ_synthetic_000": True, "guitar_synthetic_000": False}     # name: sustains


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("library")
    out = resolve(root)
    rows, samples = [], {}
    for name, sustain in INSTRUMENTS.items():
        out.makedirs(name)
        for pitch in PITCHES:
            x = synthetic_note(pitch, VELOCITY, sustain=sustain, decay_db_per_s=60 if sustain else 15)
            data, pcm, shape = notes.encode(x.astype(np.float32) / 32768, pitch, "wav")
            path = f"{name}/{name}-{pitch:03d}-{VELOCITY:03d}.wav"
            out.write_atomic(data, path)
            samples[(name, pitch)] = pcm
            rows.append({"instrument": name, "pitch": pitch, "velocity": VELOCITY, "path": path, "mix": "",
                         **note_stats(pcm, data), **shape.row()})
    files = write_library_files(out, rows, ["sfz", "dspreset", "sf2"], "wav")
    return root, rows, samples, files


def _play(library, player, name, pitch, held_s, total_s):
    root = library[0]
    if player == "sfz":
        return play_sfz(root / f"{name}.sfz", pitch, VELOCITY, held_s, total_s), 48000
    preset = sorted(INSTRUMENTS).index(name)           # one preset per instrument, in name order
    return play_sf2(root / "library.sf2", preset, pitch, VELOCITY, held_s, total_s), 44100


def test_the_analysis_found_what_each_instrument_does(library):
    _, rows, _, files = library
    for row in rows:
        assert row["sustain"] == INSTRUMENTS[row["instrument"]], row["path"]
        assert (row["loop_start"] >= 0) == row["sustain"]
    assert sorted(files.files) == ["dspreset", "page", "sf2", "sfz"]


@pytest.mark.parametrize("player", ["sfz", "sf2"])
def test_a_held_key_sustains_and_a_released_one_fades(library, player):
    x, sr = _play(library, player, "organ_synthetic_000", 55, held_s=8.0, total_s=10.0)
    peak = peak_db(x)
    at_1, at_6 = level_db(x, sr, 1.0), level_db(x, sr, 6.0)
    assert at_6 > at_1 - 12, (at_1, at_6)                 # the loop holds the note past its 3 s
    assert first_time_below(x, sr, peak - 60, after_s=8.0) <= 8.0 + 1.5


@pytest.mark.parametrize("player", ["sfz", "sf2"])
@pytest.mark.parametrize("name", sorted(INSTRUMENTS))
def test_a_tapped_key_stops(library, player, name):
    x, sr = _play(library, player, name, 60, held_s=0.3, total_s=3.0)
    assert first_time_below(x, sr, peak_db(x) - 60, after_s=0.3) <= 2.0


@pytest.mark.parametrize("player", ["sfz", "sf2"])
@pytest.mark.parametrize("name", sorted(INSTRUMENTS))
def test_a_rendered_key_plays_its_sample_and_a_key_between_transposes_it(library, player, name):
    samples = library[2]
    x, sr = _play(library, player, name, 55, held_s=2.5, total_s=2.6)
    assert resampled_correlation(x, sr, samples[(name, 55)], seconds=2.0) >= 0.95
    # Key 50 plays the sample of 48 (its zone is 48-51), two semitones up.
    own = f0_hz(samples[(name, 48)].astype(np.float64), 16000, 0.2, 1.2)
    y, sr = _play(library, player, name, 50, held_s=1.5, total_s=1.6)
    played = f0_hz(y, sr, 0.2, 1.2)
    assert abs(1200 * np.log2(played / (own * 2 ** (2 / 12)))) <= 10, (own, played)


@pytest.mark.parametrize("player", ["sfz", "sf2"])
@pytest.mark.parametrize("release", [0.4, 1.0])
def test_a_released_key_fades_60_db_in_the_notes_own_release_time(tmp_path, player, release):
    """A tone that never decays, looped: what fades it is the sampler's envelope alone."""
    pcm = synthetic_note(69, 127, sustain=True, held_s=10.0)
    shape = notes.analyse(pcm.astype(np.float32) / 32768, 69)[1]
    zone = Zone("flat.wav", 69, 0, 127, 127, 1, 127, shape.loop_start, shape.loop_end, release=release)
    sf.write(tmp_path / "flat.wav", pcm, 16000, subtype="PCM_16")
    module = format_module(player)
    ((name, maps),) = module.files([InstrumentMap("flat", "", (zone,))]).items()
    (tmp_path / name).write_bytes(module.build(maps, lambda _: pcm))
    sr = 48000 if player == "sfz" else 44100
    play = play_sfz if player == "sfz" else (lambda path, *a, **k: play_sf2(path, 0, *a, **k))
    note = play(tmp_path / name, 69, 127, 1.0, 1.0 + release + 1.0, sample_rate=sr)
    to_60 = first_time_below(note, sr, level_db(note, sr, 0.8) - 60, after_s=1.0) - 1.0
    assert to_60 == pytest.approx(release, abs=0.04)


def test_notes_without_a_shape_get_one(tmp_path):
    """A library rendered before loops existed, and a note an interrupted run left out of its manifest."""
    import hashlib

    out = resolve(tmp_path)
    out.makedirs("organ")
    x = synthetic_note(60, 127).astype(np.float32) / 32768
    old, _ = encode_note(x, "wav")                           # no smpl chunk, no crossfade
    fresh, _, shape = notes.encode(x, 60, "wav")             # what this version writes
    out.write_atomic(old, "organ/organ-060-127.wav")
    out.write_atomic(fresh, "organ/organ-062-127.wav")
    rows = [{"instrument": "organ", "pitch": p, "velocity": 127, "path": f"organ/organ-{p:03d}-127.wav", "mix": "",
             "sha256": "stale"} for p in (60, 62)]
    result = write_library_files(out, rows, ["sfz"], "wav")
    assert result.reshaped == 2
    upgraded, kept = ((tmp_path / r["path"]).read_bytes() for r in rows)
    assert notes.read_smpl(upgraded)["loops"] == [(rows[0]["loop_start"], rows[0]["loop_end"])]
    assert rows[0]["sustain"] and hashlib.sha256(upgraded).hexdigest() == rows[0]["sha256"]
    assert kept == fresh and (rows[1]["loop_start"], rows[1]["loop_end"]) == (shape.loop_start, shape.loop_end)
    assert "loop_mode=loop_sustain" in (tmp_path / "organ.sfz").read_text()


def test_a_rerun_with_the_rows_read_back_rewrites_nothing(tmp_path):
    """Rows fresh from a render (float64) and the same rows read from the manifest (float32) map alike."""
    out = resolve(tmp_path)
    out.makedirs("organ")
    x = synthetic_note(60, 127).astype(np.float32) / 32768
    data, pcm, shape = notes.encode(x, 60, "wav")
    out.write_atomic(data, "organ/organ-060-127.wav")
    row = {"instrument": "organ", "pitch": 60, "velocity": 127, "path": "organ/organ-060-127.wav", "mix": "",
           **note_stats(pcm, data), **shape.row(), "release": 0.123456789}
    first = write_library_files(out, [row], ["sfz", "dspreset", "sf2"], "wav")
    read_back = dict(row, release=float(np.float32(row["release"])))
    again = write_library_files(out, [read_back], ["sfz", "dspreset", "sf2"], "wav", first.digests)
    assert first.written and again.written == []


def test_a_flac_note_read_back_keeps_its_loop_and_is_not_crossfaded_again(tmp_path):
    out = resolve(tmp_path)
    out.makedirs("organ")
    x = synthetic_note(60, 127).astype(np.float32) / 32768
    data, pcm, shape = notes.encode(x, 60, "flac")
    assert notes.read_flac_loop(data) == (shape.loop_start, shape.loop_end)
    out.write_atomic(data, "organ/organ-060-127.flac")
    row = {"instrument": "organ", "pitch": 60, "velocity": 127, "path": "organ/organ-060-127.flac", "mix": ""}
    result = write_library_files(out, [row], ["sfz"], "flac")
    assert result.reshaped == 1 and (tmp_path / row["path"]).read_bytes() == data
    assert (row["loop_start"], row["loop_end"]) == (shape.loop_start, shape.loop_end)
    assert row["sha256"] == note_stats(pcm, data)["sha256"]
