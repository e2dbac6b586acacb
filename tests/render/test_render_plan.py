"""Render planning: grid parsing, mix names, and every bad input refused before any work."""
import os

import pytest

from sing_ray import nsynth
from sing_ray.errors import UserError
from sing_ray.render import (Mix, mix_name, mix_spec, parse_mix, parse_mix_arg, parse_pitches, parse_velocities,
                             plan_render)

from .conftest import INSTRUMENTS


def test_parse_pitches_and_velocities():
    """The grammar of sing_ray.grid, which `sing-ray data soundfont` shares (tests/test_soundfont.py)."""
    from sing_ray import grid, soundfont

    assert parse_pitches is grid.parse_pitches is soundfont.parse_pitches
    assert parse_velocities is grid.parse_velocities is soundfont.parse_velocities
    assert parse_pitches("21:108") == tuple(range(21, 109))
    assert parse_pitches("21:108:12") == (21, 33, 45, 57, 69, 81, 93, 105)
    assert parse_pitches("60,64,67,60:61") == (60, 61, 64, 67)
    assert parse_pitches("") == () and parse_pitches([64, 60, 64]) == (60, 64)
    for bad, msg in [("a:b", "not N or LO"), ("60:70:0", "step"), ("1:2:3:4", "not N"),
                     ("120:130", "128 outside the MIDI range"), ("70:60", "empty range"), ([60, 200], "200 outside")]:
        with pytest.raises(UserError, match=msg):
            parse_pitches(bad)
    assert parse_velocities("all") == (25, 50, 75, 100, 127)
    assert parse_velocities("127,25") == (25, 127) == parse_velocities([127, 25])
    for bad in ("64", [64]):
        with pytest.raises(UserError, match="velocity 64 is not one of NSynth's"):
            parse_velocities(bad)
    with pytest.raises(UserError, match="'x' is not an integer"):
        parse_velocities("100,x")


def test_mix_parsing_and_naming():
    mix = parse_mix("guitar_acoustic_010:0.7, flute_acoustic_002:0.3")
    assert mix == pytest.approx({"guitar_acoustic_010": 0.7, "flute_acoustic_002": 0.3})
    assert parse_mix("a:2,b:2") == {"a": 0.5, "b": 0.5}
    assert mix_spec(mix) == "guitar_acoustic_010:0.7,flute_acoustic_002:0.3"
    name = mix_name(mix)
    # NSynth-like: <families>_mix_synthetic_<NNN>, a valid note name once pitch and velocity are added.
    assert name.startswith("guitar_flute_mix_synthetic_") and len(name.rsplit("_", 1)[1]) == 3
    assert nsynth.parse_note_str(nsynth.format_note_str(name, 60, 100)) == (name, 60, 100)
    # The same mix (any order, any scale) gets the same name; another mix of the same families another.
    assert mix_name(parse_mix("flute_acoustic_002:3,guitar_acoustic_010:7")) == name
    assert mix_name(parse_mix("guitar_acoustic_010:0.6,flute_acoustic_002:0.4")) != name
    assert mix_name(parse_mix("guitar_acoustic_000:1,guitar_electronic_003:1")).startswith("guitar_mix_synthetic_")
    assert parse_mix_arg("my_blend=a:1,b:1") == Mix("my_blend", {"a": 0.5, "b": 0.5})
    for bad, msg in [("a", "INSTRUMENT:WEIGHT"), ("a:x", "not a number"), ("a:-1", ">= 0"), ("a:0", "sum to 0"),
                     ("", "no INSTRUMENT")]:
        with pytest.raises(UserError, match=msg):
            parse_mix(bad)
    with pytest.raises(UserError, match="lower-case"):
        parse_mix_arg("My Blend=a:1")


def test_plan_lists_the_grid(tiny_sing, tmp_path):
    plan = plan_render(tiny_sing, tmp_path / "lib", pitches="60:62", velocities="25,127",
                       mixes=["guitar_acoustic_000:0.7,flute_synthetic_001:0.3"])
    assert plan.instruments == [] and len(plan.mixes) == 1          # only the mix when --mix alone
    assert plan.total == len(plan.todo) == 6
    plan = plan_render(tiny_sing, tmp_path / "lib", instruments="all", pitches="60", velocities="100")
    assert plan.instruments == INSTRUMENTS and plan.total == 3
    assert plan.model == str(tiny_sing.resolve()) and len(plan.digest) == 64


@pytest.mark.parametrize("kwargs,message", [
    (dict(instruments="guitar_acoustic_00"), "unknown instrument 'guitar_acoustic_00'; close matches: guitar_acoustic_000"),
    (dict(instruments="piano"), "unknown instrument 'piano'"),
    (dict(mixes=["guitar_acoustic_000:1,flute_synthetc_001:1"]), "close matches: flute_synthetic_001"),
    (dict(mixes=["guitar_acoustic_000=flute_synthetic_001:1"]), "is an instrument of the model"),
    (dict(pitches="70:60"), "--pitches: '70:60' is an empty range"),
    (dict(pitches=" , "), "grid is empty: no pitches"),
    (dict(instruments=","), "grid is empty: no instruments"),
    (dict(fmt="mp3"), "--format"),
    (dict(formats="sfz,exs"), "--formats: unknown format 'exs'; known: sfz, dspreset, sf2"),
    (dict(share=0), "--share must be a fraction in (0, 1], got 0"),
    (dict(share=1.5), "--share must be a fraction in (0, 1], got 1.5"),
    (dict(share=0.2), "--share 0.2 of 3 instrument.s. keeps none: give at least 0.333"),
])
def test_bad_input_is_refused_with_a_clear_message(tiny_sing, tmp_path, kwargs, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        plan_render(tiny_sing, tmp_path / "lib", **kwargs)
    assert not (tmp_path / "lib").exists() or not any((tmp_path / "lib").iterdir())


def test_unreadable_model_and_unwritable_output(tiny_sing, tmp_path):
    with pytest.raises(UserError, match="no such checkpoint"):
        plan_render(tmp_path / "missing.pt", tmp_path / "lib")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        plan_render(junk, tmp_path / "lib")
    blocker = tmp_path / "file"
    blocker.write_text("a file where the library's folder should go")
    with pytest.raises(UserError, match="cannot write there"):
        plan_render(tiny_sing, blocker / "lib", pitches="60", velocities="100")
    if os.geteuid() != 0:   # root writes anywhere: the permission case only means something for users
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(UserError, match="cannot write there"):
            plan_render(tiny_sing, locked, pitches="60", velocities="100")


def test_a_library_too_large_for_one_soundfont_plans_split(tiny_sing, tmp_path, monkeypatch):
    # 60 mixes x 128 keys x 5 velocities: 38,400 notes of 128 kB, beyond one SoundFont's 32-bit sizes and
    # 16-bit indices: the SoundFonts are split (sing_ray.library.sf2.files), so the plan stands.
    mixes = [f"m{i}=guitar_acoustic_000:{i + 1},flute_synthetic_001:1" for i in range(60)]
    plan = plan_render(tiny_sing, tmp_path / "lib", pitches="0:127", mixes=mixes)
    assert plan.total == 38400 and "sf2" in plan.formats
    # An instrument too large for a SoundFont of its own is refused, naming the way out.
    from sing_ray.library import sf2

    monkeypatch.setattr(sf2, "MAX_NOTES", 600)
    with pytest.raises(UserError, match=r"sf2: 640 notes are more than one SoundFont holds.*--formats"):
        plan_render(tiny_sing, tmp_path / "lib", pitches="0:127", mixes=mixes[:1])
    assert plan_render(tiny_sing, tmp_path / "lib", pitches="0:127", mixes=mixes[:1], formats="sfz").total == 640
