"""``sing-ray morph``: one note in steps from one instrument's timbre to another's, among a thousand instruments."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from sing_ray import cli
from sing_ray.generate import Generator, morph_mix, morph_positions
from sing_ray.errors import UserError

from .conftest import make_checkpoint

# A vocabulary of NSynth's size: the morph reaches any two of its rows.
THOUSAND = [f"keyboard_acoustic_{i:04d}" for i in range(1000)]


@pytest.fixture(scope="module")
def thousand(tmp_path_factory):
    """A tiny untrained SING with 1,000 instruments."""
    return make_checkpoint(tmp_path_factory.mktemp("thousand") / "sing.pt", instruments=THOUSAND)


def test_morph_writes_the_steps_between_two_of_a_thousand_instruments(thousand, tmp_path, capsys):
    out = tmp_path / "morph"
    first, last = THOUSAND[3], THOUSAND[998]
    assert cli.main(["morph", "--model", str(thousand), "--from", first, "--to", last, "--steps", "4",
                     "--pitch", "48", "--velocity", "75", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    files = sorted(p.name for p in out.glob("*.wav"))
    assert files == [f"{first}-to-{last}-048-075-{k:02d}.wav" for k in range(4)]
    assert f"4 notes from {first} to {last}" in printed and "0.667 " + first in printed
    meta = json.loads((out / "morph.json").read_text())
    assert [s["file"] for s in meta["steps"]] == files
    assert [s["position"] for s in meta["steps"]] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert meta["steps"][1]["weights"] == pytest.approx({first: 2 / 3, last: 1 / 3})
    notes = [sf.read(out / f, dtype="int16")[0] for f in files]
    assert all(n.shape == (64000,) for n in notes)
    # The ends are the two instruments' own notes; the steps between are neither.
    generator = Generator.from_checkpoint(thousand)
    own = generator.generate([first, last], [48, 48], [75, 75])
    for note, wav in ((notes[0], own[0]), (notes[-1], own[1])):
        assert np.abs(note.astype(int) - np.round(np.clip(wav, -1, 1) * 32767)).max() <= 1
    assert not np.array_equal(notes[1], notes[0]) and not np.array_equal(notes[2], notes[3])
    # Each step is the mix of the two rows: what generate gives for the same weights.
    mixed = generator.generate([{first: 2 / 3, last: 1 / 3}], [48], [75])[0]
    assert np.abs(notes[1].astype(int) - np.round(np.clip(mixed, -1, 1) * 32767)).max() <= 1


@pytest.mark.parametrize("args,message", [
    (["--from", "keyboard_acoustic_0003", "--to", "keyboard_acoustic_O998"],
     "--to: unknown instrument 'keyboard_acoustic_O998'; close matches: keyboard_acoustic_0998"),
    (["--from", "oboe", "--to", "keyboard_acoustic_0001"], "--from: unknown instrument 'oboe'"),
    (["--from", "keyboard_acoustic_0001", "--to", "keyboard_acoustic_0001"],
     "morph: from and to are both 'keyboard_acoustic_0001'; name two instruments"),
    (["--from", "keyboard_acoustic_0001", "--to", "keyboard_acoustic_0002", "--steps", "1"],
     "steps must be an integer >= 2"),
    (["--from", "keyboard_acoustic_0001", "--to", "keyboard_acoustic_0002", "--pitch", "130"],
     "--pitch: 130 outside 0-127"),
    (["--from", "keyboard_acoustic_0001", "--to", "keyboard_acoustic_0002", "--velocity", "64"],
     "--velocity: 64 is not one of 25, 50, 75, 100, 127"),
])
def test_bad_morphs_are_refused_naming_the_flag(thousand, tmp_path, capsys, args, message):
    out = tmp_path / "morph"
    assert cli.main(["morph", "--model", str(thousand), "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_morph_mix_and_positions():
    assert morph_mix("a", "b", 0.25) == {"a": 0.75, "b": 0.25}
    assert morph_positions(3) == [0.0, 0.5, 1.0]
    for bad in (-0.1, 1.01, True, "0.5"):
        with pytest.raises(UserError, match="position must be a number"):
            morph_mix("a", "b", bad)
    with pytest.raises(UserError, match="steps must be"):
        morph_positions(1)
