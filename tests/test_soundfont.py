"""The SoundFont dataset builder: GM mapping, rendering, the written folder, bad input.

Renders with Debian's FluidR3_GM (scripts/setup.sh installs it); a few dozen
notes in all, since one note takes a few milliseconds.
"""
from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
import soundfile as sf

from sing_ray import nsynth
from sing_ray import soundfont as S
from sing_ray.errors import UserError

# A small selection for the builds: a piano (decays), a flute (sustains), and
# FluidR3's Contrabass, whose preset has no zone from C4 up: 60 and 72 are silent.
BUILD = dict(programs=(0, 73, 43), pitches=(48, 60, 72), velocities=(25, 100))
NUM_SILENT = 2 * 2            # Contrabass at 60 and 72, two velocities each


@pytest.fixture(scope="module")
def renderer():
    with S.NoteRenderer(S.DEFAULT_SF2) as r:
        yield r


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One local build of BUILD (no Ray)."""
    out = tmp_path_factory.mktemp("sf") / "fluidr3"
    build = S.build_soundfont_dataset(out, num_workers=0, progress=False, **BUILD)
    return out, build


def band_rms(y: np.ndarray, start_s: float, stop_s: float) -> float:
    seg = y[int(start_s * S.SAMPLE_RATE):int(stop_s * S.SAMPLE_RATE)].astype(np.float64)
    return float(np.sqrt(np.mean(seg ** 2)))


def cents_off(y: np.ndarray, pitch: int) -> float:
    """Median YIN f0 over 0.1-1.1 s against the MIDI pitch, in cents."""
    import librosa

    f0 = librosa.yin(y[1600:17600], fmin=25, fmax=4200, sr=S.SAMPLE_RATE, frame_length=2048)
    return float(1200 * np.log2(np.median(f0) / (440.0 * 2 ** ((pitch - 69) / 12))))


def write_tiny_sf2(path, program: int = 0, key_range=(0, 127)) -> None:
    """A valid one-preset SoundFont 2: a looped 500 Hz sine at bank 0, ``program``."""
    def chunk(cid: bytes, data: bytes) -> bytes:
        return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")

    def name(text: str) -> bytes:
        return text.encode().ljust(20, b"\0")

    period = 32                                            # 500 Hz at 16 kHz
    sine = (np.sin(2 * np.pi * np.arange(period * 100) / period) * 16000).astype("<i2")
    smpl = sine.tobytes() + b"\0" * 2 * 46                 # the spec's 46 zero samples
    info = b"INFO" + chunk(b"ifil", struct.pack("<HH", 2, 1)) + chunk(b"isng", b"EMU8000\0") \
        + chunk(b"INAM", b"tiny\0\0")
    pdta = b"pdta" \
        + chunk(b"phdr", name("Tiny") + struct.pack("<HHHIII", program, 0, 0, 0, 0, 0)
                + name("EOP") + struct.pack("<HHHIII", 0, 0, 1, 0, 0, 0)) \
        + chunk(b"pbag", struct.pack("<HHHH", 0, 0, 1, 0)) \
        + chunk(b"pmod", b"\0" * 10) \
        + chunk(b"pgen", struct.pack("<HH", 41, 0) + struct.pack("<HH", 0, 0)) \
        + chunk(b"inst", name("Tiny") + struct.pack("<H", 0) + name("EOI") + struct.pack("<H", 1)) \
        + chunk(b"ibag", struct.pack("<HHHH", 0, 0, 3, 0)) \
        + chunk(b"imod", b"\0" * 10) \
        + chunk(b"igen", struct.pack("<HBB", 43, *key_range) + struct.pack("<HH", 54, 1)
                + struct.pack("<HH", 53, 0) + struct.pack("<HH", 0, 0)) \
        + chunk(b"shdr", name("sine") + struct.pack("<IIIIIBbHH", 0, len(sine), period,
                                                    len(sine) - period, 16000, 71, 0, 0, 1)
                + name("EOS") + b"\0" * 26)
    body = b"sfbk" + chunk(b"LIST", info) + chunk(b"LIST", b"sdta" + chunk(b"smpl", smpl)) \
        + chunk(b"LIST", pdta)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


# ---------------------------------------------------------------- the GM table


def test_gm_table_covers_all_128_programs_with_nsynth_names():
    assert [gm.program for gm in S.GM_PROGRAMS] == list(range(128))
    for gm in S.GM_PROGRAMS:
        if gm.family is None:
            assert gm.source is None and gm.note, gm
        else:
            assert gm.family in nsynth.FAMILIES and gm.source in nsynth.SOURCES, gm
    names = list(S.INSTRUMENT_NAMES.values())
    assert len(names) == len(set(names))
    assert S.instrument_str(0) == "keyboard_acoustic_000"
    assert S.instrument_str(1) == "keyboard_acoustic_001"
    assert S.instrument_str(32) == "bass_acoustic_000"
    assert S.instrument_str(80) == "synth_lead_synthetic_000"
    assert S.instrument_str(81) == "synth_lead_synthetic_001"
    # every name is one NSynth's note_str parser accepts
    for inst in names:
        assert nsynth.parse_note_str(nsynth.format_note_str(inst, 60, 100))[0] == inst


@pytest.mark.parametrize("program, words", [(118, "Synth Drum"), (125, "sound effect"),
                                            (89, "pad"), (47, "percussion")])
def test_programs_without_family_are_refused_with_the_reason(program, words):
    with pytest.raises(UserError, match=words):
        S.instrument_str(program)
    with pytest.raises(UserError, match=f"program {program}"):
        S.parse_programs(str(program))


def test_default_selection_covers_every_family_and_stays_modest():
    families = {S.GM_PROGRAMS[p].family for p in S.DEFAULT_PROGRAMS}
    sources = {S.GM_PROGRAMS[p].source for p in S.DEFAULT_PROGRAMS}
    assert families == set(nsynth.FAMILIES)
    assert sources == set(nsynth.SOURCES)
    num_notes = len(S.plan_notes(S.DEFAULT_PROGRAMS, S.DEFAULT_PITCHES, S.DEFAULT_VELOCITIES))
    assert num_notes == 910
    assert 300 <= num_notes <= 1500


def test_parsers():
    assert S.parse_pitches("36:84:4") == S.DEFAULT_PITCHES
    assert S.parse_pitches("60") == (60,)
    assert S.parse_pitches("21:23") == (21, 22, 23)
    # The grammar `sing-ray render` takes too (sing_ray.grid): lists of pitches and ranges, 'all' velocities.
    assert S.parse_pitches("48:50,60,36") == (36, 48, 49, 50, 60)
    assert S.parse_velocities("all") == S.DEFAULT_VELOCITIES
    assert S.parse_programs("0,24-26,0") == (0, 24, 25, 26)
    assert S.parse_programs("default") == S.DEFAULT_PROGRAMS
    assert S.parse_programs("all") == S.MAPPED_PROGRAMS
    assert S.parse_velocities("127,25") == (25, 127)
    for bad, words in [("70:60", "empty range"), ("60:70:0", "step"), ("0:128", "outside"),
                       ("a:b", "integers")]:
        with pytest.raises(UserError, match=words):
            S.parse_pitches(bad)
    with pytest.raises(UserError, match="velocity 64 is not one of NSynth's"):
        S.parse_velocities("25,64")
    with pytest.raises(UserError, match="0-127"):
        S.parse_programs("130")


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("case", ["missing", "garbage", "truncated", "no preset",
                                  "empty pitches", "velocity", "unmapped program"])
def test_bad_input_is_one_clear_error_before_rendering(tmp_path, case):
    out = tmp_path / "out"
    kwargs = dict(programs=(0, 73), pitches=(60,), velocities=(100,), progress=False)
    if case == "missing":
        kwargs["sf2"], words = tmp_path / "nope.sf2", "does not exist"
    elif case == "garbage":
        (tmp_path / "bad.sf2").write_bytes(os.urandom(4096))
        kwargs["sf2"], words = tmp_path / "bad.sf2", "not a SoundFont 2 file"
    elif case == "truncated":
        (tmp_path / "cut.sf2").write_bytes(S.DEFAULT_SF2.open("rb").read(65536))
        kwargs["sf2"], words = tmp_path / "cut.sf2", "corrupt.*truncated"
    elif case == "no preset":
        write_tiny_sf2(tmp_path / "tiny.sf2", program=0)
        kwargs["sf2"], words = tmp_path / "tiny.sf2", r"no bank-0 preset for program\(s\) 73 \(Flute\)"
    elif case == "empty pitches":
        kwargs["pitches"], words = (), "pitch range is empty"
    elif case == "velocity":
        kwargs["velocities"], words = (100, 64), "velocity 64 is not one of NSynth's"
    else:
        kwargs["programs"], words = (0, 120), r"program 120 \(Guitar Fret Noise\) has no NSynth family"
    with pytest.raises(UserError, match=words):
        S.build_soundfont_dataset(out, **kwargs)
    assert not out.exists()         # nothing rendered, nothing written


def test_corrupt_content_behind_a_good_header_is_a_user_error(tmp_path):
    # RIFF/sfbk header with the right size but no chunks: only FluidSynth can tell.
    body = b"sfbk" + os.urandom(1000)
    path = tmp_path / "hollow.sf2"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with pytest.raises(UserError, match="could not be loaded"):
        S.check_soundfont(S.resolve_sf2(path), [0])


def test_tiny_soundfont_renders_its_sine_and_is_silent_outside_its_keys(tmp_path):
    # The hand-made SoundFont above is valid: it loads and plays where it has a zone.
    write_tiny_sf2(tmp_path / "tiny.sf2", key_range=(60, 72))
    assert S.check_soundfont(S.resolve_sf2(tmp_path / "tiny.sf2"), [0]) == {0: "Tiny"}
    with S.NoteRenderer(tmp_path / "tiny.sf2") as r:
        inside, outside = r.render(0, 71, 100), r.render(0, 40, 100)
    assert S.level_dbfs(inside)[0] > -40
    assert np.all(outside == 0) and S.level_dbfs(outside)[0] < S.SILENCE_DBFS


# ---------------------------------------------------------------- rendering


def test_rendering_is_deterministic_whatever_came_before(renderer):
    first = renderer.render(56, 40, 50).copy()
    for other in [(52, 61, 100), (0, 56, 127), (16, 36, 75)]:
        renderer.render(*other)
        assert np.array_equal(renderer.render(56, 40, 50), first)
    with S.NoteRenderer(S.DEFAULT_SF2) as fresh:
        assert np.array_equal(fresh.render(56, 40, 50), first)


@pytest.mark.parametrize("program", S.DEFAULT_PROGRAMS)
def test_f0_matches_the_midi_pitch_within_50_cents(renderer, program):
    for pitch in (48, 60, 72):
        off = cents_off(renderer.render(program, pitch, 100), pitch)
        assert abs(off) < 50, f"program {program} pitch {pitch}: {off:+.0f} cents"


@pytest.mark.parametrize("program", [0, 24, 40, 56, 73, 80])
def test_louder_velocities_give_louder_notes(renderer, program):
    levels = [S.level_dbfs(renderer.render(program, 60, v))[0] for v in nsynth.VELOCITIES]
    assert all(b > a + 1.0 for a, b in zip(levels, levels[1:])), levels


# Sustained instruments without deep tremolo (FluidR3's Square lead swings by
# 20 dB at 2 Hz, which no fixed threshold can read as a held level).
@pytest.mark.parametrize("program", [20, 40, 56, 65, 71, 73])
def test_sustained_notes_hold_3_s_then_release_decays(renderer, program):
    y = renderer.render(program, 60, 100)
    early, held, tail = band_rms(y, 0.5, 1.0), band_rms(y, 2.5, 2.95), band_rms(y, 3.75, 4.0)
    assert held > 0.5 * early             # still sounding at full level just before 3 s
    frame = 400                           # 25 ms
    env = np.sqrt(np.mean(y.astype(np.float64).reshape(-1, frame) ** 2, axis=1))
    last_loud = np.nonzero(env >= 0.5 * held)[0].max()
    assert 2.95 <= (last_loud + 1) * frame / S.SAMPLE_RATE <= 3.2   # the drop comes at note-off
    assert tail < 0.1 * held              # and the release decays


@pytest.mark.parametrize("program", [0, 11, 24, 32])
def test_decaying_notes_keep_decaying_after_release(renderer, program):
    y = renderer.render(program, 60, 100)
    assert band_rms(y, 3.75, 4.0) < band_rms(y, 2.5, 3.0) < band_rms(y, 0.1, 0.6)


def test_loudest_notes_do_not_clip(renderer):
    # The loudest FluidR3 program measured (Overdriven Guitar), velocity 127, low and high.
    for program, pitch in [(29, 40), (27, 30), (30, 45), (0, 36)]:
        rms_db, peak_db = S.level_dbfs(renderer.render(program, pitch, 127))
        assert peak_db < -0.3, (program, pitch, peak_db)


# ---------------------------------------------------------------- the written folder


def test_build_writes_valid_nsynth_folder_and_skips_silent_notes(built):
    out, build = built
    assert build.num_planned == 18
    assert build.num_silent == NUM_SILENT
    assert sorted(build.silent) == sorted(
        f"string_acoustic_003-{p:03d}-{v:03d}" for p in (60, 72) for v in (25, 100))
    assert build.num_written == build.num_rendered == 18 - NUM_SILENT
    examples = json.loads((out / "examples.json").read_text())
    wavs = sorted(p.stem for p in (out / "audio").glob("*.wav"))
    assert sorted(examples) == wavs and len(wavs) == 18 - NUM_SILENT
    for note_str, meta in examples.items():
        assert nsynth.validate_metadata(note_str, meta) is None
        assert set(meta) == set(nsynth.FIELDS)
        assert meta["qualities"] == [0] * len(nsynth.QUALITIES)
        info = sf.info(str(out / "audio" / f"{note_str}.wav"))
        assert (info.format, info.subtype, info.channels, info.samplerate, info.frames) == \
            ("WAV", "PCM_16", 1, nsynth.SAMPLE_RATE, nsynth.NUM_FRAMES)
    assert examples["keyboard_acoustic_000-060-100"]["instrument"] == 0
    assert examples["flute_acoustic_001-048-025"]["instrument_family_str"] == "flute"
    info = json.loads((out / "soundfont.json").read_text())
    assert info["counts"]["silent"] == NUM_SILENT
    assert [p["program"] for p in info["programs"]] == [0, 43, 73]


def test_written_audio_is_the_rendered_note(built, renderer):
    out, _ = built
    pcm, rate = sf.read(str(out / "audio" / "flute_acoustic_001-060-100.wav"), dtype="int16")
    assert rate == nsynth.SAMPLE_RATE
    assert np.array_equal(pcm, S.to_pcm16(renderer.render(73, 60, 100)))


def test_rerun_skips_complete_notes_and_redoes_broken_ones(built):
    out, first = built
    examples = (out / "examples.json").read_text()
    wavs = sorted((out / "audio").glob("*.wav"))
    mtimes = {p: p.stat().st_mtime_ns for p in wavs}
    again = S.build_soundfont_dataset(out, num_workers=0, progress=False, **BUILD)
    assert again.num_existing == first.num_written and again.num_rendered == 0
    assert again.num_silent == NUM_SILENT            # silent notes have no file: tried again
    assert (out / "examples.json").read_text() == examples
    assert all(p.stat().st_mtime_ns == mtimes[p] for p in wavs)

    removed, cut = wavs[0], wavs[1]
    good = cut.read_bytes()
    removed.unlink()
    cut.write_bytes(good[:len(good) // 2])           # a half-written note
    third = S.build_soundfont_dataset(out, num_workers=0, progress=False, **BUILD)
    assert third.num_rendered == 2 and third.num_existing == first.num_written - 2
    assert cut.read_bytes() == good and removed.is_file()
    assert (out / "examples.json").read_text() == examples


def _median_rms_db(out, program_prefix: str) -> float:
    levels = [S.level_dbfs(sf.read(str(p), dtype="float32")[0])[0]
              for p in (out / "audio").glob(f"{program_prefix}*.wav")]
    return float(np.median(levels))


def test_normalising_per_instrument_sets_each_median_and_keeps_velocity_differences(built, tmp_path,
                                                                                   monkeypatch):
    raw_out, _ = built
    out = tmp_path / "norm"
    build = S.build_soundfont_dataset(out, num_workers=0, progress=False,
                                      normalize_rms_dbfs=-26.0, **BUILD)
    assert build.num_written == build.num_rendered == 18 - NUM_SILENT
    assert sorted(build.gains_db) == [0, 43, 73]
    for prefix in ("flute_acoustic_001", "string_acoustic_003"):
        assert abs(_median_rms_db(out, prefix) + 26.0) < 0.2, prefix
    # The piano's velocity-25 notes sit some 25 dB under its loudest: its gain
    # stops where its loudest peak reaches the ceiling, and says so.
    assert build.peak_limited == [0]
    piano_peak = max(S.level_dbfs(sf.read(str(p), dtype="float32")[0])[1]
                     for p in (out / "audio").glob("keyboard_acoustic_000*.wav"))
    assert abs(piano_peak - S.NORMALIZE_PEAK_DBFS) < 0.01
    assert _median_rms_db(out, "keyboard_acoustic_000") < -26.0
    # One gain per instrument: a velocity-25 note stays as far under the
    # velocity-100 note as FluidSynth made it.
    for note in ("keyboard_acoustic_000-060", "flute_acoustic_001-048"):
        def spread(folder):
            soft, loud = (S.level_dbfs(sf.read(str(folder / "audio" / f"{note}-{v:03d}.wav"),
                                                dtype="float32")[0])[0] for v in (25, 100))
            return loud - soft
        assert abs(spread(out) - spread(raw_out)) < 0.05, note
    for path in (out / "audio").glob("*.wav"):
        assert S.level_dbfs(sf.read(str(path), dtype="float32")[0])[1] <= S.NORMALIZE_PEAK_DBFS + 0.01
    info = json.loads((out / "soundfont.json").read_text())["normalization"]
    assert info["target_rms_dbfs"] == -26.0 and info["pending"] == []
    assert set(info["gains_db"]) == {"0", "43", "73"}

    # A rerun changes no file and reads none; a lost note comes back from FluidSynth with
    # its instrument's gain, the same samples as before (to one 16-bit step), only its
    # instrument's files are read again, and nothing else is touched.
    read = []
    real_normalize = S.normalize_instruments
    monkeypatch.setattr(S.build, "normalize_instruments",
                        lambda out, notes, *a, **k: read.append(len(notes)) or real_normalize(out, notes, *a, **k))
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "audio").glob("*.wav")}
    again = S.build_soundfont_dataset(out, num_workers=0, progress=False,
                                      normalize_rms_dbfs=-26.0, **BUILD)
    assert again.num_rendered == 0 and again.gains_db == build.gains_db and read == [0]
    assert again.peak_limited == build.peak_limited == [0]
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    lost = out / "audio" / "flute_acoustic_001-060-100.wav"
    before = sf.read(str(lost), dtype="int16")[0]
    lost.unlink()
    third = S.build_soundfont_dataset(out, num_workers=0, progress=False,
                                      normalize_rms_dbfs=-26.0, **BUILD)
    assert third.num_rendered == 1 and third.num_rerendered == 0
    assert third.num_written == 18 - NUM_SILENT and third.gains_db == build.gains_db
    assert read[-1] == len(list((out / "audio").glob("flute_acoustic_001-*.wav")))
    assert np.abs(sf.read(str(lost), dtype="int16")[0].astype(int) - before).max() <= 1
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items() if p != lost)

    # Another target reads every instrument again.
    other = S.build_soundfont_dataset(out, num_workers=0, progress=False,
                                      normalize_rms_dbfs=-30.0, **BUILD)
    assert read[-1] == 18 - NUM_SILENT and other.gains_db[43] < build.gains_db[43] - 3.9
    # Without the flag the folder goes back to FluidSynth's levels, byte for byte.
    plain = S.build_soundfont_dataset(out, num_workers=0, progress=False, **BUILD)
    assert plain.num_rerendered == 18 - NUM_SILENT and not plain.gains_db
    for path in sorted((raw_out / "audio").glob("*.wav")):
        assert (out / "audio" / path.name).read_bytes() == path.read_bytes(), path.name
    assert "normalization" not in json.loads((out / "soundfont.json").read_text())


def test_a_normalising_pass_cut_short_is_redone_whole(built, tmp_path, monkeypatch):
    out = tmp_path / "cut"
    calls = []

    def fail_after_one(path, audio, *args, **kwargs):
        calls.append(path)
        if len(calls) > S_written + 1:
            raise KeyboardInterrupt
        return real_write(path, audio, *args, **kwargs)

    S.build_soundfont_dataset(out, num_workers=0, progress=False, **BUILD)
    S_written = 0
    real_write = S.normalize.write_note_wav
    monkeypatch.setattr(S.normalize, "write_note_wav", fail_after_one)
    with pytest.raises(KeyboardInterrupt):
        S.build_soundfont_dataset(out, num_workers=0, progress=False,
                                  normalize_rms_dbfs=-26.0, **BUILD)
    monkeypatch.undo()
    assert json.loads((out / "soundfont.json").read_text())["normalization"]["pending"] == [0, 43, 73]
    again = S.build_soundfont_dataset(out, num_workers=0, progress=False,
                                      normalize_rms_dbfs=-26.0, **BUILD)
    assert again.num_rerendered == 18 - NUM_SILENT
    for prefix in ("flute_acoustic_001", "string_acoustic_003"):
        assert abs(_median_rms_db(out, prefix) + 26.0) < 0.2, prefix


def test_ray_workers_write_the_same_folder(built, ray_local, tmp_path):
    out, _ = built
    ray_out = tmp_path / "ray"
    build = S.build_soundfont_dataset(ray_out, num_workers=2, progress=False, chunk_notes=4,
                                      **BUILD)
    assert build.num_rendered == 18 - NUM_SILENT and build.num_silent == NUM_SILENT
    assert (ray_out / "examples.json").read_text() == (out / "examples.json").read_text()
    for path in sorted((out / "audio").glob("*.wav")):
        assert (ray_out / "audio" / path.name).read_bytes() == path.read_bytes(), path.name


def test_the_ingest_accepts_the_output(built, ray_local, tmp_path):
    from sing_ray.data import ingest

    out, build = built
    summary = ingest.ingest(str(out), str(tmp_path / "dataset"), progress=False)
    assert summary.listed == build.num_written
    assert summary.accepted == build.num_written and summary.rejected == 0


# ---------------------------------------------------------------- entry points


def test_cli_renders_and_reports(tmp_path, capsys):
    from sing_ray.cli import main

    out = tmp_path / "cli"
    code = main(["data", "soundfont", "--out", str(out), "--workers", "0", "--programs", "73,80",
                 "--pitches", "60:64:4", "--velocities", "100", "--no-progress"])
    assert code == 0
    assert "wrote 4 notes" in capsys.readouterr().out
    assert len(json.loads((out / "examples.json").read_text())) == 4


@pytest.mark.parametrize("flags, words", [
    (["--velocities", "64"], "velocity 64 is not one of NSynth's"),
    (["--pitches", "70:60"], "empty range"),
    (["--programs", "125"], "has no NSynth family"),
    (["--sf2", "/nonexistent/x.sf2"], "does not exist"),
    (["--normalize-rms", "-80"], "--normalize-rms -80.0: expected a median RMS between -60 and -3 dBFS"),
])
def test_cli_and_pipeline_turn_bad_input_into_exit_2(tmp_path, capsys, flags, words):
    from pipelines.soundfont import main as pipeline_main
    from sing_ray.cli import main

    argv = ["--out", str(tmp_path / "o"), "--workers", "0", "--no-progress", *flags]
    assert main(["data", "soundfont", *argv]) == 2
    assert words in capsys.readouterr().err
    assert pipeline_main(argv) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
