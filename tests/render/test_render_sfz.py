"""SFZ export: parsed back, every key 21-108 and every velocity 1-127 maps to exactly one sample."""
import pytest

from sing_ray.sfz import build_sfz, key_ranges, parse_sfz, velocity_ranges


def _lookup(regions, key, velocity):
    return [r["sample"] for r in regions
            if int(r["lokey"]) <= key <= int(r["hikey"]) and int(r["lovel"]) <= velocity <= int(r["hivel"])]


@pytest.mark.parametrize("pitches,velocities", [
    (range(60, 64), (25, 127)),                     # a narrow grid: extended to the keyboard ends
    (range(21, 109, 12), (25, 50, 75, 100, 127)),   # octaves over a piano, every NSynth velocity
    ([64], [100]),                                  # one sample plays everything
    ([21, 22, 108], [50, 75]),                      # adjacent pitches and a wide gap
])
def test_every_key_and_velocity_maps_to_exactly_one_sample(pitches, velocities):
    samples = [(p, v, f"inst/inst-{p:03d}-{v:03d}.wav") for p in pitches for v in velocities]
    regions = parse_sfz(build_sfz("inst", samples))
    assert len(regions) == len(samples)
    for key in range(21, 109):
        for velocity in range(1, 128):
            hits = _lookup(regions, key, velocity)
            assert len(hits) == 1, (key, velocity, hits)
    # Each sample plays at its own key, at its own velocity, untransposed there.
    for p, v, path in samples:
        assert _lookup(regions, p, v) == [path]
        region = next(r for r in regions if r["sample"] == path)
        assert int(region["pitch_keycenter"]) == p
        assert region["amp_veltrack"] == "0" and region["loop_mode"] == "one_shot"


def test_irregular_layers_still_partition_the_keyboard():
    """Layers with different pitch sets (a library grown by several runs) each cover every key."""
    samples = [(p, 25, f"a/a-{p:03d}-025.wav") for p in (40, 80)] + \
              [(p, 127, f"a/a-{p:03d}-127.wav") for p in range(30, 100, 7)]
    regions = parse_sfz(build_sfz("a", samples, mix="x:0.5,y:0.5"))
    for key in range(0, 128):
        for velocity in range(1, 128):
            assert len(_lookup(regions, key, velocity)) == 1


def test_ranges():
    assert key_ranges([60, 64, 67]) == [(60, 0, 62), (64, 63, 65), (67, 66, 127)]
    assert velocity_ranges([25, 50, 75, 100, 127]) == [
        (25, 1, 25), (50, 26, 50), (75, 51, 75), (100, 76, 100), (127, 101, 127)]
    assert velocity_ranges([100]) == [(100, 1, 127)]
    with pytest.raises(ValueError, match="no samples"):
        build_sfz("empty", [])


def test_parser_reads_inherited_opcodes_comments_and_spaces():
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
