"""Instrument labels for the page and the SoundFont split: from NSynth names and from metadata files."""
from __future__ import annotations

import pytest

from sing_ray.library.mapping import instrument_labels, name_labels, read_instrument_info


def test_labels_from_names():
    assert name_labels("guitar_acoustic_010") == ("guitar", "acoustic")
    assert name_labels("synth_lead_synthetic_1203") == ("synth_lead", "synthetic")      # a family with '_'
    assert name_labels("keyboard_electronic") is None and name_labels("piano_acoustic_001") is None
    assert instrument_labels("guitar_flute_mix_synthetic_457", "guitar_acoustic_010:0.7") == \
        {"family": "mix", "source": "synthetic"}
    assert instrument_labels("my organ") == {"family": "other", "source": "other"}
    # Metadata wins over the name; the SoundFont is its file's name; numbers stay numbers.
    assert instrument_labels("guitar_acoustic_010", info={"family": "bass", "soundfont": "C:\\sf\\Timbres.sf2",
                                                          "bank": 8, "program": 25.0, "preset": "Steel"}) == \
        {"family": "bass", "source": "acoustic", "soundfont": "Timbres.sf2", "bank": 8, "program": 25,
         "preset": "Steel"}


def test_read_instrument_info_takes_every_documented_shape():
    mapping = {"a_0": {"soundfont": "x.sf2", "preset_name": "P", "ignored": [1]}}
    assert read_instrument_info(mapping) == {"a_0": {"soundfont": "x.sf2", "preset": "P"}}
    assert read_instrument_info({"instruments": mapping}) == read_instrument_info(mapping)
    listed = [{"instrument_str": "a_0", "soundfont_file": "x.sf2", "bank": 0, "program": 5}]
    assert read_instrument_info({"instruments": listed}) == {"a_0": {"soundfont": "x.sf2", "bank": 0, "program": 5}}
    # The corpus's corpus.json (sing-ray data soundfont --corpus), as it is.
    corpus = {"settings": {}, "instruments": [
        {"instrument_str": "keyboard_acoustic_000", "instrument": 0, "sf2": "/usr/share/sounds/sf2/FluidR3_GM.sf2",
         "bank": 0, "program": 0, "preset": "Yamaha Grand Piano", "key_range": [21, 108], "family": "keyboard",
         "source": "acoustic", "pitches": [21, 108], "num_pitches": 88, "identity": "x|1|0|0", "notes": 440}],
        "dropped": [{"sf2": "x.sf2", "bank": 0, "program": 1, "reason": "duplicate"}]}
    assert read_instrument_info(corpus) == {"keyboard_acoustic_000": {
        "family": "keyboard", "source": "acoustic", "soundfont": "/usr/share/sounds/sf2/FluidR3_GM.sf2", "bank": 0,
        "program": 0, "preset": "Yamaha Grand Piano"}}
    assert instrument_labels("keyboard_acoustic_000", info=read_instrument_info(corpus)["keyboard_acoustic_000"])[
        "soundfont"] == "FluidR3_GM.sf2"
    examples = {f"guitar_acoustic_000-0{p}-100": {"instrument_str": "guitar_acoustic_000", "pitch": p,
                                                   "instrument_family_str": "guitar",
                                                   "instrument_source_str": "acoustic"} for p in (60, 61)}
    assert read_instrument_info(examples) == {"guitar_acoustic_000": {"family": "guitar", "source": "acoustic"}}
    for bad, message in ((["x"], "item 0 is not an object naming its instrument"), ({"a": 3}, "entry of 'a'"),
                         (3, "expected an object or a list")):
        with pytest.raises(ValueError, match=message):
            read_instrument_info(bad)


def test_render_refuses_an_unreadable_instrument_info_file(tmp_path):
    from render.conftest import make_checkpoint
    from sing_ray.errors import UserError
    from sing_ray.render import plan_render

    model = make_checkpoint(tmp_path / "m.pt")
    with pytest.raises(UserError, match="--instrument-info .*missing.json: cannot read it"):
        plan_render(model, tmp_path / "lib", pitches="60", instrument_info=tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(UserError, match="--instrument-info .*bad.json: instrument info: item 0"):
        plan_render(model, tmp_path / "lib", pitches="60", instrument_info=bad)
    bad.write_text("{not json")
    with pytest.raises(UserError, match="--instrument-info .*bad.json: Expecting property name"):
        plan_render(model, tmp_path / "lib", pitches="60", instrument_info=bad)
