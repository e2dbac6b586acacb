"""SFZ and Decent Sampler files parsed back: every key 21-108 and velocity 1-127 maps to exactly one
sample, at its own key, with the loop and release the note's analysis found."""
import pytest

from sing_ray.errors import UserError
from sing_ray.library import parse_formats
from sing_ray.library.dspreset import build_dspreset, parse_dspreset
from sing_ray.library.mapping import instrument_maps, key_ranges, velocity_ranges
from sing_ray.library.sfz import DB60_FRACTION, build_sfz, parse_sfz


def _rows(name, pitches, velocities, mix=""):
    """Manifest rows; odd pitches sustain (looped), even ones decay."""
    return [{"instrument": name, "pitch": p, "velocity": v, "path": f"{name}/{name}-{p:03d}-{v:03d}.wav",
             "mix": mix, "sha256": f"{p}{v}", "loop_start": 8000 + p if p % 2 else -1,
             "loop_end": 40000 + v if p % 2 else -1, "release": 0.25 + p / 1000}
            for p in pitches for v in velocities]


def _sfz_zones(imap):
    return [{"sample": r["sample"], "lokey": int(r["lokey"]), "hikey": int(r["hikey"]), "lovel": int(r["lovel"]),
             "hivel": int(r["hivel"]), "root": int(r["pitch_keycenter"]), "release": float(r["ampeg_release"]) * DB60_FRACTION,
             "loop": (int(r["loop_start"]), int(r["loop_end"])) if r["loop_mode"] == "loop_sustain" else None,
             "ampveltrack": r["amp_veltrack"]}
            for r in parse_sfz(build_sfz(imap))]


def _dspreset_zones(imap):
    return [{"sample": s["path"], "lokey": int(s["loNote"]), "hikey": int(s["hiNote"]), "lovel": int(s["loVel"]),
             "hivel": int(s["hiVel"]), "root": int(s["rootNote"]), "release": float(s["release"]),
             "loop": (int(s["loopStart"]), int(s["loopEnd"])) if s["loopEnabled"] == "true" else None,
             "ampveltrack": s["ampVelTrack"]}
            for s in parse_dspreset(build_dspreset(imap))]


READERS = {"sfz": _sfz_zones, "dspreset": _dspreset_zones}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("pitches,velocities", [
    (range(60, 64), (25, 127)),                     # a narrow grid: extended to the keyboard ends
    (range(21, 109, 12), (25, 50, 75, 100, 127)),   # octaves over a piano, every NSynth velocity
    ([64], [100]),                                  # one sample plays everything
    ([21, 22, 108], [50, 75]),                      # adjacent pitches and a wide gap
])
def test_every_key_and_velocity_maps_to_exactly_one_sample(reader, pitches, velocities):
    rows = _rows("inst", pitches, velocities)
    (imap,) = instrument_maps(rows)
    zones = READERS[reader](imap)
    assert len(zones) == len(rows)
    for key in range(21, 109):
        for velocity in range(1, 128):
            hits = [z for z in zones if z["lokey"] <= key <= z["hikey"] and z["lovel"] <= velocity <= z["hivel"]]
            assert len(hits) == 1, (key, velocity, hits)
    # Each sample plays at its own key and velocity, untransposed there, with its loop and release.
    for row in rows:
        zone = next(z for z in zones if z["sample"] == row["path"])
        assert zone["root"] == row["pitch"] and zone["lokey"] <= row["pitch"] <= zone["hikey"]
        assert zone["lovel"] <= row["velocity"] <= zone["hivel"] and zone["ampveltrack"] == "0"
        assert zone["loop"] == ((row["loop_start"], row["loop_end"]) if row["pitch"] % 2 else None)
        assert zone["release"] == pytest.approx(row["release"], abs=1e-3)


def test_the_two_formats_agree_and_irregular_layers_still_partition_the_keyboard():
    """Layers with different pitch sets (a library grown by several runs) each cover every key."""
    rows = _rows("a", (40, 80), (25,), mix="x:0.5,y:0.5") + _rows("a", range(30, 100, 7), (127,), mix="x:0.5,y:0.5")
    (imap,) = instrument_maps(rows)
    sfz, ds = _sfz_zones(imap), _dspreset_zones(imap)
    key = lambda z: z["sample"]  # noqa: E731
    sfz, ds = sorted(sfz, key=key), sorted(ds, key=key)
    assert [dict(z, release=0) for z in sfz] == [dict(z, release=0) for z in ds]
    assert [z["release"] for z in sfz] == pytest.approx([z["release"] for z in ds], abs=2e-3)
    for k in range(0, 128):
        for velocity in range(1, 128):
            assert len([z for z in sfz if z["lokey"] <= k <= z["hikey"] and z["lovel"] <= velocity <= z["hivel"]]) == 1
    assert "timbre mix: x:0.5,y:0.5" in build_sfz(imap) and "timbre mix: x:0.5,y:0.5" in build_dspreset(imap)


def test_mapping_picks_one_sample_format_and_keeps_instruments_apart():
    rows = _rows("b", (60,), (100,)) + _rows("a", (60, 62), (100,))
    flac = dict(rows[0], path="b/b-060-100.flac")
    maps = instrument_maps(rows + [flac], fmt="flac")
    assert [m.name for m in maps] == ["b"] and maps[0].zones[0].path.endswith(".flac")
    assert [m.name for m in instrument_maps(rows, fmt="wav")] == ["a", "b"]
    assert [m.name for m in instrument_maps(rows, instruments=["a"])] == ["a"]


def test_ranges_and_formats():
    assert key_ranges([60, 64, 67]) == [(60, 0, 62), (64, 63, 65), (67, 66, 127)]
    assert velocity_ranges([25, 50, 75, 100, 127]) == [
        (25, 1, 25), (50, 26, 50), (75, 51, 75), (100, 76, 100), (127, 101, 127)]
    assert velocity_ranges([100]) == [(100, 1, 127)]
    assert parse_formats(None) == ["sfz", "dspreset", "sf2"] == parse_formats("all")
    assert parse_formats(" SFZ, sf2,sfz") == ["sfz", "sf2"]
    with pytest.raises(UserError, match=r"unknown format 'exs'; known: sfz, dspreset, sf2"):
        parse_formats("sfz,exs")
    with pytest.raises(UserError, match="name at least one"):
        parse_formats(",")


def test_dspreset_is_a_decent_sampler_document():
    (imap,) = instrument_maps(_rows("inst", (60, 61), (127,)))
    text = build_dspreset(imap)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<DecentSampler minVersion=')
    with pytest.raises(ValueError, match="not <DecentSampler>"):
        parse_dspreset("<sfz/>")
    with pytest.raises(ValueError, match="one <groups>"):
        parse_dspreset("<DecentSampler><groups/><groups/></DecentSampler>")


def test_sfz_parser_reads_inherited_opcodes_comments_and_spaces():
    text = """// comment <region> sample=nothing.wav
<control> default_path=x/
<global> amp_veltrack=0
<group> lovel=1 hivel=64
<region> sample=dir with space/a b.wav lokey=0 hikey=60 pitch_keycenter=48 // trailing
<region>sample=c.wav lokey=61 hikey=127
<group> lovel=65 hivel=127 <region> sample=d.wav lokey=0 hikey=127
"""
    regions = parse_sfz(text)
    assert [r["sample"] for r in regions] == ["dir with space/a b.wav", "c.wav", "d.wav"]
    assert regions[0]["hikey"] == "60" and regions[0]["lovel"] == "1" and regions[0]["amp_veltrack"] == "0"
    assert regions[2]["lovel"] == "65" and "default_path" not in regions[2]
