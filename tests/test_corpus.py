"""The corpus over many SoundFonts: the preset reader, sorting presets out, de-duplication, the build.

Most tests build tiny SoundFonts here (a few looped waves); the real Debian
files are read (their headers only) and one small slice of two is rendered.
"""
from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from sing_ray import nsynth
from sing_ray import soundfont as S
from sing_ray.errors import UserError
from sing_ray.soundfont.fingerprint import distance, note_fingerprint

SF2_DIR = Path("/usr/share/sounds/sf2")
SF3_DIR = Path("/usr/share/sounds/sf3")


def need(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"{path} is not installed (scripts/install_soundfonts.sh installs it)")
    return path


def _wave(shape: str, period: int, amp: float = 0.5) -> np.ndarray:
    phase = np.arange(period * 100) / period
    wave = np.sin(2 * np.pi * phase) if shape == "sine" else np.sign(np.sin(2 * np.pi * phase + 0.1))
    return (wave * amp * 32767).astype("<i2")


def write_sf2(path: Path, presets: list[dict]) -> None:
    """A valid SoundFont 2: each preset one instrument of one sample, with the zones asked for.

    A preset: bank, program, name; optional shape ("sine"/"square"), period (samples),
    zones (instrument key ranges), preset_keys (the preset zone's key range),
    global_keys (the instrument's global zone's key range), vel (every zone's velocity range).
    """
    def chunk(cid: bytes, data: bytes) -> bytes:
        return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")

    def name(text: str) -> bytes:
        return text.encode().ljust(20, b"\0")

    phdr = pbag = pgen = inst = ibag = igen = shdr = smpl = b""
    nbag = ngen = nibag = nigen = 0
    for i, p in enumerate(presets):
        sample = _wave(p.get("shape", "sine"), p.get("period", 32))
        start = len(smpl) // 2
        smpl += sample.tobytes() + b"\0" * 2 * 46
        period = p.get("period", 32)
        shdr += name(f"s{i}") + struct.pack("<IIIIIBbHH", start, start + len(sample), start + period,
                                            start + len(sample) - period, 16000, 71, 0, 0, 1)
        phdr += name(p["name"]) + struct.pack("<HHHIII", p["program"], p["bank"], nbag, 0, 0, 0)
        pbag += struct.pack("<HH", ngen, 0)
        nbag += 1
        if "preset_keys" in p:
            pgen += struct.pack("<HBB", 43, *p["preset_keys"])
            ngen += 1
        pgen += struct.pack("<HH", 41, i)
        ngen += 1
        inst += name(p["name"]) + struct.pack("<H", nibag)
        if "global_keys" in p:
            ibag += struct.pack("<HH", nigen, 0)
            igen += struct.pack("<HBB", 43, *p["global_keys"])
            nibag, nigen = nibag + 1, nigen + 1
        for zone in p.get("zones", [None]):
            ibag += struct.pack("<HH", nigen, 0)
            gens = b""
            if zone is not None:
                gens += struct.pack("<HBB", 43, *zone)
            if "vel" in p:
                gens += struct.pack("<HBB", 44, *p["vel"])
            gens += struct.pack("<HH", 54, 1) + struct.pack("<HH", 53, i)
            igen += gens
            nibag, nigen = nibag + 1, nigen + len(gens) // 4
    phdr += name("EOP") + struct.pack("<HHHIII", 0, 0, nbag, 0, 0, 0)
    pbag += struct.pack("<HH", ngen, 0)
    pgen += struct.pack("<HH", 0, 0)
    inst += name("EOI") + struct.pack("<H", nibag)
    ibag += struct.pack("<HH", nigen, 0)
    igen += struct.pack("<HH", 0, 0)
    shdr += name("EOS") + b"\0" * 26
    info = b"INFO" + chunk(b"ifil", struct.pack("<HH", 2, 1)) + chunk(b"isng", b"EMU8000\0") \
        + chunk(b"INAM", b"test\0\0")
    pdta = b"pdta" + chunk(b"phdr", phdr) + chunk(b"pbag", pbag) + chunk(b"pmod", b"\0" * 10) \
        + chunk(b"pgen", pgen) + chunk(b"inst", inst) + chunk(b"ibag", ibag) + chunk(b"imod", b"\0" * 10) \
        + chunk(b"igen", igen) + chunk(b"shdr", shdr)
    body = b"sfbk" + chunk(b"LIST", info) + chunk(b"LIST", b"sdta" + chunk(b"smpl", smpl)) + chunk(b"LIST", pdta)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


# Two instruments that sound apart, a guitar quiet at low velocities, and presets left out.
BANK = [
    dict(bank=0, program=0, name="Sine Piano", shape="sine", period=32),
    dict(bank=0, program=73, name="Square Flute", shape="square", period=40, zones=[(40, 80)]),
    dict(bank=0, program=24, name="Loud Guitar", shape="sine", period=24, vel=(90, 127), zones=[(55, 65)]),
    dict(bank=0, program=30, name="Rock Kit", period=20),          # a kit by its name
    dict(bank=0, program=89, name="Warm Pad", period=30),          # no NSynth family
    dict(bank=127, program=8, name="Elec Organ 1", period=30),     # GS's MT-32 map
    dict(bank=128, program=0, name="Standard", period=16),         # drums
]


@pytest.fixture(scope="module")
def fonts(tmp_path_factory):
    """a.sf2 (BANK) and b.sf2, an exact copy."""
    folder = tmp_path_factory.mktemp("fonts")
    write_sf2(folder / "a.sf2", BANK)
    shutil.copy(folder / "a.sf2", folder / "b.sf2")
    return folder


# ---------------------------------------------------------------- the preset reader


def test_reader_lists_presets_with_their_key_ranges(tmp_path):
    write_sf2(tmp_path / "k.sf2", [
        dict(bank=0, program=5, name="Full"),
        dict(bank=0, program=6, name="Two zones", zones=[(30, 40), (50, 60)]),
        dict(bank=8, program=6, name="Narrowed", zones=[(48, 84)], preset_keys=(60, 72)),
        dict(bank=0, program=7, name="Global", global_keys=(36, 48)),
        dict(bank=0, program=9, name="Apart", zones=[(10, 20)], preset_keys=(30, 40)),
    ])
    info = S.read_soundfont(tmp_path / "k.sf2")
    assert info.version == (2, 1)
    assert [(p.bank, p.program, p.name) for p in info.presets] == [
        (0, 5, "Full"), (0, 6, "Two zones"), (0, 7, "Global"), (0, 9, "Apart"), (8, 6, "Narrowed")]
    ranges = {p.name: p.key_range for p in info.presets}
    assert ranges == {"Full": (0, 127), "Two zones": (30, 60), "Narrowed": (60, 72), "Global": (36, 48),
                      "Apart": None}
    assert info.preset(8, 6).name == "Narrowed" and info.preset(1, 1) is None


@pytest.mark.parametrize("case, words", [("garbage", "not a SoundFont 2 or 3"), ("cut", "runs past the end"),
                                         ("missing", "does not exist")])
def test_reader_refuses_bad_files_with_the_reason(tmp_path, case, words):
    path = tmp_path / "bad.sf2"
    if case == "garbage":
        path.write_bytes(b"RIFX" + b"\0" * 100)
    elif case == "cut":
        write_sf2(tmp_path / "ok.sf2", BANK[:1])
        path.write_bytes((tmp_path / "ok.sf2").read_bytes()[:3000])
    with pytest.raises(UserError, match=words):
        S.read_soundfont(path)


@pytest.mark.parametrize("path, presets, banks", [
    (SF2_DIR / "FluidR3_GM.sf2", 189, {0: 128, 8: 28, 9: 1, 16: 1, 128: 31}),
    (SF2_DIR / "TimGM6mb.sf2", 136, {0: 128, 128: 8}),
    (SF3_DIR / "FluidR3Mono_GM.sf3", 197, None),      # SoundFont 3, an unpadded odd-sized sdta list
    (SF3_DIR / "MuseScore_General_Lite.sf3", 311, None),
])
def test_reader_counts_the_debian_soundfonts(path, presets, banks):
    info = S.read_soundfont(need(path))
    assert len(info.presets) == presets
    if banks is not None:
        counts: dict[int, int] = {}
        for p in info.presets:
            counts[p.bank] = counts.get(p.bank, 0) + 1
        assert counts == banks
    if path.name == "FluidR3_GM.sf2":
        # The Contrabass has no zone from C4 up (test_soundfont renders those keys silent).
        assert info.preset(0, 43).key_range == (0, 57)
        assert info.preset(0, 0).name == "Yamaha Grand Piano"


# ---------------------------------------------------------------- sorting out and naming


def test_drum_kits_unmapped_programs_and_the_mt32_bank_are_counted_out(fonts):
    candidates, excluded = S.classify([S.read_soundfont(fonts / "a.sf2")], range(21, 109))
    assert [(c.program, c.family, c.source) for c in candidates] == [
        (0, "keyboard", "acoustic"), (24, "guitar", "acoustic"), (73, "flute", "acoustic")]
    assert {(e.program, e.reason) for e in excluded} == {(30, "percussion"), (0, "percussion"),
                                                         (89, "no_family"), (8, "mt32_bank")}
    pad = next(e for e in excluded if e.reason == "no_family")
    assert "pad" in pad.detail
    assert candidates[1].pitches == tuple(range(55, 66)) and candidates[0].pitches == tuple(range(21, 109))
    # --programs keeps the others apart, counted
    _, out = S.classify([S.read_soundfont(fonts / "a.sf2")], range(21, 109), programs=[0])
    assert sum(e.reason == "not_selected" for e in out) == 2


def test_names_count_per_family_and_source_in_order():
    base = dict(sf2=Path("x.sf2"), bank=0, preset="p", key_range=(0, 127), pitches=(60,))
    kept = [S.Candidate(program=p, family=f, source=s, **base) for p, f, s in
            [(0, "keyboard", "acoustic"), (1, "keyboard", "acoustic"), (80, "synth_lead", "synthetic"),
             (4, "keyboard", "electronic")]]
    names = S.assign_names(kept)
    assert names == ["keyboard_acoustic_000", "keyboard_acoustic_001", "synth_lead_synthetic_000",
                     "keyboard_electronic_000"]
    for name in names:
        meta = nsynth.example_metadata(name, 60, 100, note=0, instrument=0)
        assert nsynth.validate_metadata(meta["note_str"], meta) is None
    with pytest.raises(UserError, match="three digits"):
        S.assign_names([kept[0]] * 1001)


def test_installed_soundfonts_count_each_real_file_once(tmp_path):
    (tmp_path / "sf2").mkdir()
    (tmp_path / "sf3").mkdir()
    write_sf2(tmp_path / "sf2" / "One.sf2", BANK[:1])
    (tmp_path / "sf3" / "Link.sf3").symlink_to(tmp_path / "sf2" / "One.sf2")
    (tmp_path / "sf3" / "Gone.sf3").symlink_to(tmp_path / "nowhere.sf3")
    (tmp_path / "sf3" / "notes.txt").write_text("not a SoundFont")
    assert S.installed_soundfonts([tmp_path / "sf2", tmp_path / "sf3", tmp_path / "none"]) == \
        [(tmp_path / "sf2" / "One.sf2").resolve()]


# ---------------------------------------------------------------- de-duplication


def test_fingerprint_distance_ignores_level_and_sees_timbre_and_envelope():
    t = np.arange(nsynth.NUM_FRAMES) / nsynth.SAMPLE_RATE
    tone = 0.3 * np.sin(2 * np.pi * 262 * t) * (t < 3)
    bright = tone + 0.1 * np.sin(2 * np.pi * 262 * 5 * t) * (t < 3)
    short = tone * np.exp(-3 * t)
    fp = lambda a: note_fingerprint(a)[None]  # noqa: E731
    assert distance(fp(tone), fp(tone * 0.5)) < 0.05          # 6 dB quieter: the same instrument
    assert distance(fp(tone), fp(bright)) > S.TOLERANCE_DB
    assert distance(fp(tone), fp(short)) > S.TOLERANCE_DB


def test_dedupe_drops_a_copy_in_a_second_file_and_keeps_different_presets(fonts, tmp_path):
    plan = S.plan_corpus([fonts / "b.sf2", fonts / "a.sf2"], out=tmp_path, pitches="48:72:12",
                         velocities="25,100", progress=False)
    assert [c.key for c in plan.dedupe.kept] == ["a.sf2:000:000", "a.sf2:000:024", "a.sf2:000:073"]
    assert plan.names == ["keyboard_acoustic_000", "guitar_acoustic_000", "flute_acoustic_000"]
    assert {k: kept for k, (kept, _) in plan.dedupe.duplicate_of.items()} == {
        "b.sf2:000:000": "a.sf2:000:000", "b.sf2:000:024": "a.sf2:000:024", "b.sf2:000:073": "a.sf2:000:073"}
    assert all(d < 0.01 for _, d in plan.dedupe.duplicate_of.values())
    assert plan.presets == 14 and len(plan.candidates) == 6 and len(plan.excluded) == 8
    assert plan.dedupe.num_rendered == 6
    # The fingerprints are cached in the build folder: planning again renders none.
    again = S.plan_corpus([fonts / "a.sf2", fonts / "b.sf2"], out=tmp_path, pitches="48:72:12",
                          velocities="25,100", progress=False)
    assert again.dedupe.num_rendered == 0 and again.names == plan.names
    assert S.plan_corpus([fonts / "a.sf2", fonts / "b.sf2"], pitches="48:72:12", tolerance_db=None,
                         progress=False).names[-1] == "flute_acoustic_001"


def test_a_real_preset_found_in_two_soundfonts_is_kept_once():
    # csound's sf_GMbank.sf2 holds TimGM6mb's Celesta and Recorder: the same reference notes.
    # The Flute differs (13 dB apart).
    fonts = [need(SF2_DIR / "TimGM6mb.sf2"), need(SF2_DIR / "sf_GMbank.sf2")]
    plan = S.plan_corpus(fonts, programs=[8, 73, 74], progress=False)
    dropped = {k: kept for k, (kept, _) in plan.dedupe.duplicate_of.items()}
    assert dropped == {"sf_GMbank.sf2:000:008": "TimGM6mb.sf2:000:008",
                       "sf_GMbank.sf2:000:074": "TimGM6mb.sf2:000:074"}
    assert "sf_GMbank.sf2:000:073" in [c.key for c in plan.dedupe.kept]


# ---------------------------------------------------------------- the build


def _plan(fonts, out):
    return S.plan_corpus([fonts / "a.sf2", fonts / "b.sf2"], out=out, pitches="48:72:12",
                         velocities="25,100", progress=False)


def test_corpus_build_writes_nsynth_layout_whose_counts_reconcile_and_resumes(fonts, tmp_path):
    out = tmp_path / "corpus"
    build = S.build_corpus(_plan(fonts, out), out, progress=False)
    # keyboard 3 pitches + flute 3 + guitar 1 (its keys 55-65 hold 60 alone), two velocities
    assert build.planned == (3 + 3 + 1) * 2
    assert build.silent == 1                   # the guitar sounds from velocity 90 up only
    assert build.planned == build.written + build.silent + build.rejected
    examples = json.loads((out / "examples.json").read_text())
    assert len(examples) == build.written == build.rendered
    assert "guitar_acoustic_000-060-025" not in examples
    for note_str, meta in examples.items():
        assert nsynth.validate_metadata(note_str, meta) is None
        assert (out / "audio" / f"{note_str}.wav").is_file()
    record = json.loads((out / "corpus.json").read_text())
    assert [i["instrument_str"] for i in record["instruments"]] == _plan(fonts, out).names
    flute = record["instruments"][2]
    assert (Path(flute["sf2"]).name, flute["bank"], flute["program"], flute["preset"], flute["key_range"]) == \
        ("a.sf2", 0, 73, "Square Flute", [40, 80])
    copies = [d for d in record["dropped"] if d["reason"] == "duplicate"]
    assert {d["duplicate_of"] for d in copies} == set(record["instruments"][i]["instrument_str"] for i in range(3))
    assert record["left_out"]["percussion"]["count"] == 4 and record["build"]["written"] == build.written

    mtimes = {p: p.stat().st_mtime_ns for p in (out / "audio").glob("*.wav")}
    again = S.build_corpus(_plan(fonts, out), out, progress=False)
    assert again.rendered == 0 and again.new_silent == 0 and again.existing == build.written
    assert again.silent == 1 and again.written == build.written
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    lost = out / "audio" / "flute_acoustic_000-060-100.wav"
    lost.unlink()
    third = S.build_corpus(_plan(fonts, out), out, progress=False)
    assert third.rendered == 1 and lost.is_file()


def test_parquet_mode_writes_the_ingested_layout_and_resumes(fonts, tmp_path):
    from sing_ray.data.dataset import load_manifest, read_split_metadata
    from sing_ray.data.direct import ParquetNoteWriter

    ds = str(tmp_path / "ds")
    made = []

    def make_writer(instruments):
        made.append(sorted(instruments))
        return ParquetNoteWriter(ds, instruments, audio="flac", source="test")

    wav = S.build_corpus(_plan(fonts, tmp_path / "wav"), tmp_path / "wav", progress=False)
    build = S.build_corpus(_plan(fonts, tmp_path / "pq"), tmp_path / "pq", make_writer=make_writer, parquet=ds,
                           progress=False)
    assert build.written == build.rendered == wav.written and build.silent == 1
    assert not (tmp_path / "pq" / "audio").exists()
    names = set()
    for split in nsynth.SPLITS:
        names.update(read_split_metadata(ds, split)["note_str"].tolist())
    assert names == set(json.loads((tmp_path / "wav" / "examples.json").read_text()))
    assert load_manifest(ds)
    again = S.build_corpus(_plan(fonts, tmp_path / "pq"), tmp_path / "pq", make_writer=make_writer, parquet=ds,
                           progress=False)
    assert again.rendered == 0 and again.existing == build.written and again.written == build.written


def test_ray_workers_build_the_same_corpus(fonts, ray_local, tmp_path):
    local = S.build_corpus(_plan(fonts, tmp_path / "l"), tmp_path / "l", progress=False)
    remote = S.build_corpus(_plan(fonts, tmp_path / "r"), tmp_path / "r", num_workers=2, chunk_notes=3,
                            progress=False)
    assert remote.written == local.written and remote.silent == local.silent
    for path in sorted((tmp_path / "l" / "audio").glob("*.wav")):
        assert (tmp_path / "r" / "audio" / path.name).read_bytes() == path.read_bytes()


# ---------------------------------------------------------------- the command


def test_cli_plans_without_rendering_notes(fonts, tmp_path, capsys):
    from sing_ray.cli import main

    code = main(["data", "soundfont", "--corpus", "--plan-only", "--sf2", str(fonts / "a.sf2"), "--sf2",
                 str(fonts / "b.sf2"), "--out", str(tmp_path / "o"), "--pitches", "48:72:12", "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "14 presets in 2 SoundFont(s): 3 instruments" in printed
    assert "duplicate" in printed and "NSynth notes" in printed and "68955" in printed
    assert not (tmp_path / "o" / "audio").exists()
    assert (tmp_path / "o" / "corpus.json").is_file()


@pytest.mark.parametrize("flags, words", [
    (["--plan-only"], "--plan-only: only with --corpus"),
    (["--sf2", "a", "--sf2", "b"], "--sf2 given 2 times"),
    (["--corpus"], "no SoundFont given"),
    (["--corpus", "--sf2", "/nonexistent.sf2"], "does not exist"),
    (["--corpus", "--all-installed", "--overwrite"], "only with --parquet"),
])
def test_cli_refuses_corpus_flags_out_of_place(tmp_path, capsys, flags, words):
    from sing_ray.cli import main

    assert main(["data", "soundfont", "--out", str(tmp_path / "o"), "--workers", "0", "--no-progress",
                 *flags]) == 2
    assert words in capsys.readouterr().err
