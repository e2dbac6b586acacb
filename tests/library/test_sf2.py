"""The SoundFont export: the file parses back to the zones it was given, and FluidSynth plays it right.

The notes are synthetic (:func:`.samplers.synthetic_note`): a sustaining instrument with
loops, a decaying one without, and a copy of the first sharing its samples.
"""
from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from sing_ray.errors import UserError
from sing_ray.library import format_module, notes, sf2
from sing_ray.library.mapping import InstrumentMap, Zone, instrument_maps

from .samplers import level_db, play_sf2, synthetic_note

SUSTAINED = "Synthetic Sustained Organ (long name)"   # over 20 characters: cut in the file
PLUCKED = "Plucked"
COPY = "Organ copy"                                    # the same samples as SUSTAINED
PITCHES = (48, 60, 72)
VELOCITIES = (50, 127)
RELEASE = {SUSTAINED: 1.0, PLUCKED: 0.3, COPY: 1.0}
SR = 44100


def _rows():
    rows, pcm = [], {}
    for name, sustain in ((SUSTAINED, True), (PLUCKED, False)):
        for pitch in PITCHES:
            for velocity in VELOCITIES:
                path = f"{name.split()[0]}/{pitch:03d}_{velocity:03d}.wav"
                pcm[path] = synthetic_note(pitch, velocity, sustain=sustain, decay_db_per_s=60 if sustain else 20)
                shape = notes.analyse(pcm[path].astype(np.float32) / 32768, pitch)[1]
                loop = (shape.loop_start, shape.loop_end)
                row = dict(instrument=name, pitch=pitch, velocity=velocity, path=path,
                           loop_start=loop[0], loop_end=loop[1], release=RELEASE[name])
                rows.append(row)
                if sustain:
                    rows.append(dict(row, instrument=COPY))
    return rows, pcm


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """``(maps, pcm by path, path of library.sf2)``."""
    rows, pcm = _rows()
    maps = instrument_maps(rows)
    maps = [next(m for m in maps if m.name == n) for n in (SUSTAINED, PLUCKED, COPY)]
    reads = []

    def read_pcm(path):
        reads.append(path)
        return pcm[path]

    (name, held), = sf2.files(maps).items()
    data = sf2.build(held, read_pcm)
    assert sorted(reads) == sorted(pcm)                    # each path read once
    path = tmp_path_factory.mktemp("sf2") / name
    path.write_bytes(data)
    return maps, pcm, path


# ---------------------------------------------------------------- reading the file back

_RECORDS = {b"phdr": "<20sHHHIII", b"pbag": "<HH", b"pmod": "<HHhHH", b"pgen": "<HH",
            b"inst": "<20sH", b"ibag": "<HH", b"imod": "<HHhHH", b"igen": "<HH",
            b"shdr": "<20sIIIIIBbHH"}


def _chunks(data: bytes, offset: int, end: int):
    while offset < end:
        tag, size = struct.unpack_from("<4sI", data, offset)
        yield tag, offset + 8, size
        offset += 8 + size + size % 2


def read_sf2(data: bytes) -> dict:
    """The chunks of a SoundFont: INFO strings, ``smpl`` as int16, pdta chunks as record tuples."""
    riff, size = struct.unpack_from("<4sI", data)
    assert (riff, data[8:12], size) == (b"RIFF", b"sfbk", len(data) - 8)
    out = {}
    lists = [data[o:o + 4] for _, o, _ in _chunks(data, 12, len(data))]
    assert lists == [b"INFO", b"sdta", b"pdta"]
    for _, o, s in _chunks(data, 12, len(data)):
        for tag, co, cs in _chunks(data, o + 4, o + s):
            body = data[co:co + cs]
            if tag == b"smpl":
                out[tag] = np.frombuffer(body, dtype="<i2")
            elif tag in _RECORDS:
                fmt = _RECORDS[tag]
                assert cs % struct.calcsize(fmt) == 0, tag
                out[tag] = list(struct.iter_unpack(fmt, body))
            else:
                out[tag] = body
    return out


def _name(raw: bytes) -> str:
    return raw.split(b"\0")[0].decode("ascii")


def presets(sf: dict) -> list[dict]:
    """Per preset: name, number, bank, instrument name, global zone's modulators, and zones:
    ``order`` (the generators' operators) and ``gen<operator>`` (its value; ranges as ``(lo, hi)``)."""
    out = []
    for p, (name, number, bank, bag, *_) in enumerate(sf[b"phdr"][:-1]):
        pgens = [g for b in range(bag, sf[b"phdr"][p + 1][3])
                 for g in sf[b"pgen"][sf[b"pbag"][b][0]:sf[b"pbag"][b + 1][0]]]
        assert len(pgens) == 1 and pgens[0][0] == sf2.GEN_INSTRUMENT
        i = pgens[0][1]
        iname, ibag = sf[b"inst"][i]
        ibag_end = sf[b"inst"][i + 1][1]
        zones, global_mods = [], None
        for b in range(ibag, ibag_end):
            (g0, m0), (g1, m1) = sf[b"ibag"][b], sf[b"ibag"][b + 1]
            gens, mods = sf[b"igen"][g0:g1], sf[b"imod"][m0:m1]
            if b == ibag and (not gens or gens[-1][0] != sf2.GEN_SAMPLE_ID):
                global_mods = mods
                continue
            values = {}
            for op, amount in gens:
                if op in (sf2.GEN_KEY_RANGE, sf2.GEN_VEL_RANGE):
                    values[op] = (amount & 0xFF, amount >> 8)
                elif op == sf2.GEN_RELEASE_VOL_ENV:                    # signed
                    values[op] = amount - 0x10000 if amount >= 0x8000 else amount
                else:
                    values[op] = amount
            zones.append(dict(order=[op for op, _ in gens], **{f"gen{op}": v for op, v in values.items()}))
        out.append(dict(name=_name(name), number=number, bank=bank, instrument=_name(iname),
                        global_mods=global_mods, zones=zones))
    return out


def test_the_file_parses_back_to_the_zones(library):
    maps, pcm, path = library
    sf = read_sf2(path.read_bytes())
    assert sf[b"ifil"] == struct.pack("<HH", 2, 1)
    assert sf[b"isng"].rstrip(b"\0") == b"EMU8000" and sf[b"ISFT"].rstrip(b"\0") == b"sing-ray"
    assert sf[b"INAM"].startswith(b"sing-ray")
    for terminal, tag in ((b"phdr", "EOP"), (b"inst", "EOI"), (b"shdr", "EOS")):
        assert _name(sf[terminal][-1][0]) == tag
    assert sf[b"pmod"] == [(0, 0, 0, 0, 0)] and sf[b"imod"][-1] == (0, 0, 0, 0, 0)

    # One copy of each sample's PCM, each followed by 46 zeros.
    assert len(sf[b"smpl"]) == sum(len(p) + 46 for p in pcm.values())

    found = presets(sf)
    assert [(p["name"], p["instrument"], p["number"], p["bank"]) for p in found] == \
        [(n, n, i, 0) for i, n in enumerate(sf2.short_names([m.name for m in maps]))]
    assert found[0]["name"] == "Syntheti~(long name)"
    headers = sf[b"shdr"]
    for imap, preset in zip(maps, found):
        assert {m[:2] for m in preset["global_mods"]} == {(0x0502, 48), (0x0102, 8)}
        assert all(m[2] == 0 for m in preset["global_mods"])
        cover = np.zeros((128, 128), dtype=int)
        assert len(preset["zones"]) == len(imap.zones)
        for zone, got in zip(imap.zones, preset["zones"]):
            assert got["order"] == [43, 44, 58, 54, 38, 53]     # ranges first, sampleID last
            (lokey, hikey), (lovel, hivel) = got["gen43"], got["gen44"]
            assert (lokey, hikey, lovel, hivel) == (zone.lokey, zone.hikey, zone.lovel, zone.hivel)
            cover[lokey:hikey + 1, lovel:hivel + 1] += 1
            assert got["gen58"] == zone.pitch
            assert got["gen38"] == sf2.release_timecents(zone.release) == round(1200 * math.log2(zone.release / 0.625))
            name, start, end, sloop, eloop, rate, root, correction, link, kind = headers[got["gen53"]]
            assert (rate, root, correction, link, kind) == (16000, zone.pitch, 0, 0, 1)
            np.testing.assert_array_equal(sf[b"smpl"][start:end], pcm[zone.path])
            assert not sf[b"smpl"][end:end + 46].any()
            if zone.looped:
                assert got["gen54"] == 3
                assert (sloop - start, eloop - start) == (zone.loop_start, zone.loop_end + 1)
            else:
                assert got["gen54"] == 0
                assert start <= sloop < eloop <= end
        assert (cover[21:109, 1:128] == 1).all(), f"{imap.name}: keys 21-108 x velocities 1-127 not covered once"


def test_fluidsynth_loads_it_with_every_preset(library):
    maps, _, path = library
    import fluidsynth

    synth = fluidsynth.Synth(samplerate=44100.0)
    try:
        sfid = synth.sfload(str(path))
        assert sfid >= 0
        assert [synth.sfpreset_name(sfid, 0, i) for i in range(len(maps))] == sf2.short_names([m.name for m in maps])
    finally:
        synth.delete()


# ---------------------------------------------------------------- playing it in FluidSynth


def test_velocity_picks_the_layer_and_nothing_else(library):
    # FluidSynth's default modulators would make velocity 1 about 50 dB softer than 50,
    # and 64 darker than 127 (velocity to filter cutoff, switched on from 64 up); the
    # global zone's modulators turn both off.
    _, _, path = library
    notes = {v: play_sf2(path, 0, 60, v, 1.0, 1.0, SR) for v in (1, 50, 51, 64, 127)}
    np.testing.assert_allclose(notes[1], notes[50], atol=1e-5)
    np.testing.assert_allclose(notes[51], notes[127], atol=1e-5)
    np.testing.assert_allclose(notes[64], notes[127], atol=1e-5)
    louder = level_db(notes[127], SR, 0.5) - level_db(notes[50], SR, 0.5)
    assert louder == pytest.approx(20 * math.log10(127 / 50), abs=0.3)


# ---------------------------------------------------------------- size


def test_check_size_refuses_an_instrument_over_4_gib():
    assert format_module("sf2") is sf2 and sf2.NAME == "sf2"
    sf2.check_size(128 * 5, 64000)                         # the largest grid an instrument has: 82 MB
    sf2.check_size(10000, 64000)                           # 1.2 GiB
    with pytest.raises(UserError, match=r"48,768 notes need a 5\.8\d GiB .*4 GiB.*--formats"):
        sf2.check_size(3 * 128 * 127, 64000)
    with pytest.raises(UserError, match=r"4 GiB"):
        sf2.check_size(2000, 1_100_000)                    # few notes, long ones


def test_check_size_refuses_more_notes_than_the_generator_index_holds():
    sf2.check_size(sf2.MAX_NOTES, 1000)
    with pytest.raises(UserError, match=r"16-bit"):
        sf2.check_size(sf2.MAX_NOTES + 1, 1000)


# ---------------------------------------------------------------- a library past one file: split by family


def _maps(names, notes_each):
    return [InstrumentMap(name, mix, tuple(Zone(f"{name}/{k}.wav", 60 + k, 0, 127, 127, 1, 127)
                                           for k in range(notes_each))) for name, mix in names]


def test_a_library_within_one_file_keeps_library_sf2():
    maps = _maps([("guitar_acoustic_000", ""), ("flute_synthetic_001", "")], 5)
    assert sf2.files(maps, max_notes=10) == {"library.sf2": maps}
    assert sf2.presets(maps, max_notes=10) == {"guitar_acoustic_000": ("library.sf2", 0, 0),
                                              "flute_synthetic_001": ("library.sf2", 0, 1)}
    # The default limit is what one file holds: 10,922 zones for 4 s notes (4 GiB would hold 33,500).
    big = _maps([(f"guitar_acoustic_{i:03d}", "") for i in range(24)], 440)
    assert list(sf2.files(big)) == ["library.sf2"]                               # 10,560 notes
    assert len(sf2.files(big + _maps([("flute_acoustic_000", "")], 440))) == 2   # 11,000


def test_past_one_file_a_soundfont_per_family_then_parts_of_whole_instruments():
    names = [("guitar_acoustic_000", ""), ("guitar_electronic_001", ""), ("guitar_synthetic_002", ""),
             ("flute_synthetic_003", ""), ("odd name", ""), ("guitar_flute_mix_synthetic_457", "a:1")]
    maps = _maps(names, 4)
    split = sf2.files(maps, max_notes=10)
    assert {k: [m.name for m in v] for k, v in split.items()} == {
        "library-flute.sf2": ["flute_synthetic_003"],
        "library-guitar-1.sf2": ["guitar_acoustic_000", "guitar_electronic_001"],
        "library-guitar-2.sf2": ["guitar_synthetic_002"],
        "library-mix.sf2": ["guitar_flute_mix_synthetic_457"],
        "library-other.sf2": ["odd name"],
    }
    assert sorted(m.name for v in split.values() for m in v) == sorted(n for n, _ in names)
    assert all(sum(len(m.zones) for m in v) <= 10 for v in split.values())
    assert sf2.presets(maps, max_notes=10)["guitar_electronic_001"] == ("library-guitar-1.sf2", 0, 1)


def test_split_files_through_the_writer_load_in_fluidsynth(tmp_path, monkeypatch):
    import soundfile as sfile

    from sing_ray.data.storage import resolve
    from sing_ray.library import page
    from sing_ray.library.writer import write_library_files

    monkeypatch.setattr(sf2, "MAX_NOTES", 4)               # a file holds 4 notes: 2 instruments of 2
    rows = []
    for i, name in enumerate(("guitar_acoustic_000", "guitar_acoustic_001", "guitar_acoustic_002",
                              "flute_synthetic_003")):
        (tmp_path / name).mkdir()
        for pitch in (60, 72):
            path = f"{name}/{name}-{pitch:03d}-127.wav"
            sfile.write(tmp_path / path, synthetic_note(pitch, 127, sustain=False), 16000, subtype="PCM_16")
            rows.append(dict(instrument=name, pitch=pitch, velocity=127, path=path, mix="", release=0.3,
                             loop_start=-1, loop_end=-1))
    files = write_library_files(resolve(str(tmp_path)), rows, ["sfz", "sf2"], "wav")
    assert sorted(files.files["sf2"]) == ["library-flute.sf2", "library-guitar-1.sf2", "library-guitar-2.sf2"]
    assert not (tmp_path / "library.sf2").exists() and len(files.files["sfz"]) == 4     # SFZ as before
    import fluidsynth

    expected = {"library-flute.sf2": ["flute_synthetic_003"],
                "library-guitar-1.sf2": ["guitar_acoustic_000", "guitar_acoustic_001"],
                "library-guitar-2.sf2": ["guitar_acoustic_002"]}
    for name, presets in expected.items():
        synth = fluidsynth.Synth(samplerate=44100.0)
        try:
            sfid = synth.sfload(str(tmp_path / name))
            assert sfid >= 0, name
            assert [synth.sfpreset_name(sfid, 0, i) for i in range(len(presets))] == sf2.short_names(presets)
        finally:
            synth.delete()
        played = play_sf2(tmp_path / name, len(presets) - 1, 72, 127, 0.5, 0.6, 16000)
        assert level_db(played, 16000, 0.3) > -40, name
    # The page links every SoundFont and says where each instrument plays.
    data = page.read_data((tmp_path / "index.html").read_bytes())
    assert {i["name"]: i["sf2"] for i in data["instruments"]}["guitar_acoustic_001"] == ["library-guitar-1.sf2", 0, 1]
    text = (tmp_path / "index.html").read_text()
    assert all(f'href="{n}"' in text for n in expected)


def test_build_refuses_over_4_gib_with_the_same_error():
    zones = tuple(Zone(f"{i}.wav", 60, 0, 127, 127, 1, 127) for i in range(2))
    big = np.zeros(2 ** 30 + 1, dtype=np.int16)            # two of them: just over 4 GiB of PCM (never touched)
    with pytest.raises(UserError, match=r"4 GiB"):
        sf2.build([InstrumentMap("big", "", zones)], lambda _: big)


def test_release_timecents_are_clamped_to_the_specification():
    # The envelope is 1 / 0.625 of the release: FluidSynth's is 60 dB down at 0.625 of it.
    assert [sf2.release_timecents(s) for s in (0.0, 0.0005, 0.3125, 0.625, 1.25, 500.0)] == \
        [-12000, -12000, -1200, 0, 1200, 8000]


def test_a_loop_outside_its_sample_is_refused():
    zone = Zone("a.wav", 60, 0, 127, 127, 1, 127, loop_start=100, loop_end=64000)
    with pytest.raises(ValueError, match="outside"):
        sf2.build([InstrumentMap("a", "", (zone,))], lambda _: np.zeros(64000, dtype=np.int16))


def test_long_instrument_names_stay_distinct_in_20_characters():
    names = ["keyboard_acoustic_001", "keyboard_acoustic_004", "keyboard_electronic_002", "keyboard_electronic_098",
             "organ", "guitar_flute_mix_synthetic_457", "guitar_flute_mix_synthetic_457"]
    short = sf2.short_names(names)
    assert len(set(short)) == len(names) and all(len(n) <= 20 for n in short)
    assert short[4] == "organ" and short[0].endswith("_001") and short[3].endswith("_098")
