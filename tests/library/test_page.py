"""index.html, the audition page: its HTML, the note spectrograms, and the page opened from disk in Chromium."""
from __future__ import annotations

import html
import io
import re
from urllib.parse import quote

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from browser import chromium, severe_errors
from sing_ray.library import page
from sing_ray.library.mapping import instrument_maps

SAMPLE_RATE, FRAMES = 16000, 64000
# A mix's name may hold characters that HTML escapes and URLs quote ('&', '#', a space).
INSTRUMENTS = {"guitar_acoustic_000": "", "mix a&b #1": "guitar_acoustic_000:70,flute_synthetic_001:30"}
PITCHES, VELOCITIES = (58, 60, 64), (25, 127)


def tone(pitch: int, velocity: int) -> np.ndarray:
    """A 4 s int16 harmonic tone at the MIDI pitch, held 3 s, then decaying."""
    t = np.arange(FRAMES) / SAMPLE_RATE
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5))
    env = np.where(t < 3.0, 1.0, np.exp(-(t - 3.0) * 8)) * np.minimum(1.0, t * 100)
    return ((0.2 + 0.6 * velocity / 127) * env * wave / 2.1 * 32767).astype(np.int16)


def _write_notes(root) -> list[dict]:
    """Every instrument's notes as WAVs with their PNGs under ``root``; returns the manifest rows."""
    rows = []
    for name, mix in INSTRUMENTS.items():
        (root / name).mkdir()
        for pitch in PITCHES:
            for velocity in VELOCITIES:
                path = f"{name}/{name}-{pitch:03d}-{velocity:03d}.wav"
                pcm = tone(pitch, velocity)
                sf.write(root / path, pcm, SAMPLE_RATE, subtype="PCM_16")
                (root / page.png_path(path)).write_bytes(page.note_png(pcm))
                rows.append({"instrument": name, "pitch": pitch, "velocity": velocity, "path": path, "mix": mix})
    return rows


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A library folder by hand: samples, their PNGs, index.html; returns (root, manifest rows)."""
    root = tmp_path_factory.mktemp("library")
    rows = _write_notes(root)
    maps = instrument_maps(rows)
    assert page.files(maps) == {"index.html": maps}
    (root / "index.html").write_bytes(page.build(maps, lambda p: sf.read(root / p, dtype="int16")[0]))
    return root, rows


def _png(data: bytes) -> Image.Image:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_note_png_tone_and_silence():
    image = np.asarray(_png(page.note_png(tone(69, 100))))
    assert image.shape == (page.HEIGHT, page.WIDTH, 3) == (64, 200, 3)
    # A 440 Hz tone held 3 s: bright in its band while held, dark after the fade; nothing up at 8 kHz.
    brightness = image.astype(int).sum(axis=2)
    row = page.HEIGHT - 1 - int(round(np.log(440 / page.F_MIN) / np.log(page.F_MAX / page.F_MIN) * (page.HEIGHT - 1)))
    assert brightness[row, 10:140].min() > 600 and brightness[row, -5:].max() < 200
    assert brightness[0].max() < 100
    # Silence: a valid PNG, the colormap's darkest colour throughout; a float note and a short one draw too.
    silent = np.asarray(_png(page.note_png(np.zeros(FRAMES, np.int16))))
    assert silent.shape == (64, 200, 3) and (silent == silent[0, 0]).all() and silent[0, 0].sum() < 10
    assert _png(page.note_png(tone(60, 100) / 32768.0)).size == (200, 64)
    assert _png(page.note_png(tone(60, 100)[:300])).size == (200, 64)


def test_png_path_and_note_names():
    assert page.png_path("guitar_acoustic_000/guitar_acoustic_000-060-100.wav") == \
        "guitar_acoustic_000/guitar_acoustic_000-060-100.png"
    assert page.png_path("mix a.b/mix a.b-021-025.flac") == "mix a.b/mix a.b-021-025.png"
    assert [page.note_name(p) for p in (0, 21, 58, 60, 61, 127)] == ["C-1", "A0", "A#3", "C4", "C#4", "G9"]


def test_page_carries_every_note_once_and_no_audio_source(library):
    root, rows = library
    text = (root / "index.html").read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "http://" not in text and "https://" not in text
    # One player and no note's audio named in the markup: a note is fetched when played.
    assert text.count("<audio") == 1 and '<audio id="player" controls preload="none"></audio>' in text
    assert re.search(r"<audio[^>]*\ssrc=", text) is None and "<source" not in text
    # The notes come back from the page's data, each once, with the labels and the files.
    data = page.read_data(text)
    by_name = {i["name"]: i for i in data["instruments"]}
    assert set(by_name) == set(INSTRUMENTS)
    paths = [p for i in data["instruments"] for p in page.note_paths(i).values()]
    assert sorted(paths) == sorted(r["path"] for r in rows) and len(paths) == 12
    guitar, mix = by_name["guitar_acoustic_000"], by_name["mix a&b #1"]
    assert (guitar["family"], guitar["source"], guitar["mix"]) == ("guitar", "acoustic", "")
    assert (mix["family"], mix["mix"]) == ("mix", "guitar_acoustic_000:70,flute_synthetic_001:30")
    assert guitar["pitches"] == list(PITCHES) and guitar["velocities"] == list(VELOCITIES)
    assert "missing" not in guitar and "paths" not in guitar
    assert guitar["files"] == [["sfz", "guitar_acoustic_000.sfz"], ["dspreset", "guitar_acoustic_000.dspreset"]]
    assert guitar["sf2"] == ["library.sf2", 0, 0] and mix["sf2"] == ["library.sf2", 0, 1]
    # The data block cannot end its script element, whatever the names hold.
    block = text[text.index('id="library-data">'):]
    assert "</" not in block[:block.index("</script>")]
    assert "2 instruments, 12 notes" in text
    assert 'href="library.sf2"' in text
    only_sfz = page.build(instrument_maps(rows), None, formats=("sfz",))
    assert "library.sf2" not in only_sfz.decode()
    assert [i["files"] for i in page.read_data(only_sfz)["instruments"]] == \
        [[["sfz", "guitar_acoustic_000.sfz"]], [["sfz", "mix a&b #1.sfz"]]]


def test_odd_paths_missing_cells_and_labels_from_instrument_info():
    rows = [{"instrument": "piano", "pitch": p, "velocity": v, "path": f"elsewhere/{p}-{v}.flac", "mix": ""}
            for p in (60, 62) for v in (50, 100) if (p, v) != (62, 50)]
    info = {"piano": {"family": "keyboard", "source": "acoustic", "soundfont": "/usr/share/sounds/sf2/TimGM6mb.sf2",
                      "bank": 0, "program": 0, "preset": "Acoustic Grand"}}
    data = page.page_data(instrument_maps(rows), formats=(), info=info)
    (piano,) = data["instruments"]
    assert piano["missing"] == [[62, 50]] and piano["ext"] == "flac"
    assert page.note_paths(piano) == {(r["pitch"], r["velocity"]): r["path"] for r in rows}
    assert {k: piano[k] for k in ("family", "source", "soundfont", "bank", "program", "preset")} == \
        {"family": "keyboard", "source": "acoustic", "soundfont": "TimGM6mb.sf2", "bank": 0, "program": 0,
         "preset": "Acoustic Grand"}
    # A name out of NSynth's form without info is "other".
    assert page.page_data(instrument_maps(rows), formats=())["instruments"][0]["family"] == "other"


@pytest.fixture(scope="module")
def browser():
    with chromium("the library page's browser test") as chrome:
        yield chrome


def _wait(browser, script: str, message: str, timeout: float = 15):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout, poll_frequency=0.1).until(lambda b: b.execute_script(script), message=message)


def _open_all(browser):
    """Open every listed instrument (drawing its grid)."""
    browser.execute_script("document.querySelectorAll('li.inst details').forEach(d => { d.open = true; });")
    _wait(browser, "return [...document.querySelectorAll('li.inst details')].every(d => d.querySelector('table'));",
          "the instruments' grids were never drawn")


def test_page_from_disk_in_chromium(library, browser):
    root, rows = library
    browser.get((root / "index.html").as_uri())
    assert browser.title == "sing-ray sample library"
    _wait(browser, "return window.libraryReady > 0;", "the page's script never finished")
    assert browser.execute_script("return document.querySelectorAll('li.inst').length;") == 2
    _open_all(browser)

    # Every note's button names a file that loads as 4 s of audio, and each note has one button.
    notes = browser.execute_script(
        "return [...document.querySelectorAll('button.note')].map(b => [b.dataset.index, +b.dataset.pitch, "
        "+b.dataset.velocity]);")
    assert len(notes) == len(rows)
    browser.execute_script(
        "window.probes = [...document.querySelectorAll('button.note')].map(b => { const td = b.closest('td'); "
        "const src = td.querySelector('img').src.replace(/\\.png$/, '.wav'); const a = new Audio(src); "
        "a.preload = 'metadata'; return a; });")
    _wait(browser, "return window.probes.every(a => a.readyState >= 1 || a.error);", "the notes never loaded")
    probes = browser.execute_script("return window.probes.map(a => [a.src, a.error && a.error.code, a.duration]);")
    assert [p for p in probes if p[1] or abs(p[2] - 4.0) > 0.01] == []
    assert {p[0] for p in probes} == {(root / r["path"]).as_uri() for r in rows}

    # Every spectrogram loads (lazy ones too, made eager).
    browser.execute_script("document.querySelectorAll('td img').forEach(i => { i.loading = 'eager'; });")
    _wait(browser, "return [...document.querySelectorAll('td img')].every(i => i.complete);", "the images never loaded")
    images = browser.execute_script("return [...document.querySelectorAll('td img')].map(i => [i.naturalWidth, i.naturalHeight]);")
    assert images == [[200, 64]] * len(rows)

    # A note's button plays it in the one player; another button moves the player to its note.
    buttons = "document.querySelectorAll('button.note')"
    browser.execute_script(f"{buttons}[0].click();")
    _wait(browser, "const a = document.getElementById('player'); return !a.paused && a.currentTime > 0;",
          "the first note never played")
    first = browser.execute_script("return document.getElementById('player').currentSrc;")
    browser.execute_script(f"{buttons}[3].click();")
    _wait(browser, f"const a = document.getElementById('player'); return !a.paused && a.currentSrc !== '{first}';",
          "the second note never played")
    state = browser.execute_script(
        f"return [document.getElementById('player').currentSrc, {buttons}[0].getAttribute('aria-pressed'), "
        f"{buttons}[3].getAttribute('aria-pressed'), document.getElementById('now').textContent, "
        f"{buttons}[3].closest('td').title];")
    guitar = sorted(r["path"] for r in rows if r["instrument"] == "guitar_acoustic_000")
    assert first == (root / guitar[0]).as_uri() and state[0] == (root / guitar[3]).as_uri()
    assert state[1:3] == ["false", "true"]
    assert state[3] == "guitar_acoustic_000 C4 (60) velocity 127"
    # 58, 60, 64 rendered: 60 covers keys 60-62; 127 covers velocities 26-127.
    assert state[4] == "plays keys 60-62 (C4-D4), velocities 26-127"
    assert severe_errors(browser) == []


# ----------------------------------------------------------------------------------------------- A/B buttons

@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """A library whose guitar notes have compare files (render --compare-dataset): every one a nearest
    key, those at velocity 127 a real note too; the mix none. Returns (root, rows, entries)."""
    from sing_ray.library import compare

    root = tmp_path_factory.mktemp("compared")
    rows, entries = _write_notes(root), {}
    for row in rows:
        if row["mix"]:
            continue
        name, pitch, velocity, path = row["instrument"], row["pitch"], row["velocity"], row["path"]
        entry = {"nearest_note": f"{name}-{pitch - 2:03d}-{velocity:03d}", "semitones": 2}
        kinds = {"nearest": tone(pitch - 2, velocity)}
        if velocity == 127:
            entry.update(real_split="test", lts_db={"model": 4.2, "nearest": 1.5})
            kinds["real"] = tone(pitch, velocity)
        for kind, samples in kinds.items():
            rel = compare.compare_path(path, kind)
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / rel, samples, SAMPLE_RATE, subtype="PCM_16")
            (root / page.png_path(rel)).write_bytes(page.note_png(samples))
            entry[kind] = rel
        entries[path] = entry
    maps = instrument_maps(rows)
    (root / "index.html").write_bytes(page.build(maps, None, compare=entries))
    return root, rows, entries


def test_compare_paths_stay_out_of_the_instrument_folders():
    from sing_ray.library.compare import compare_path

    assert compare_path("guitar_acoustic_000/guitar_acoustic_000-060-127.wav", "nearest") == \
        "compare/guitar_acoustic_000/guitar_acoustic_000-060-127.nearest.wav"
    assert compare_path("a/a-021-025.flac", "real") == "compare/a/a-021-025.real.flac"
    with pytest.raises(ValueError):
        compare_path("a/a-021-025.wav", "model")


def test_page_has_a_b_choices_where_a_note_has_compare_files(compared):
    root, rows, entries = compared
    text = (root / "index.html").read_text(encoding="utf-8")
    choices = page.read_data(text)["compare"]
    # 6 guitar notes: model and nearest key each, real at velocity 127 (3 notes); the mix has none.
    assert set(choices) == {r["path"] for r in rows if not r["mix"]}
    labels = [c[0] for cs in choices.values() for c in cs]
    assert labels.count("model") == 6 and labels.count("nearest key") == 6 and labels.count("real") == 3
    for path, cs in choices.items():
        assert cs[0][:2] == ["model", path]
        for label, file, title in cs:
            assert (root / file).is_file() and (root / page.png_path(file)).is_file(), file
            if label == "nearest key":
                assert "resampled +2 semitones" in title and file.startswith("compare/")
    assert any("long-term spectrum 1.5 dB from the real note" in c[2] for cs in choices.values() for c in cs)
    assert "6 of 12 notes have a nearest key, 3 a real note" in text
    assert "the model 4.2 dB, the nearest key 1.5 dB" in text
    # No compare entries: no choices, no paragraph (the page of a library rendered without a dataset).
    plain = page.build(instrument_maps(rows), None)
    assert page.read_data(plain)["compare"] == {} and "A/B" not in plain.decode()


def test_a_b_buttons_switch_the_player_in_chromium(compared, browser):
    root, rows, entries = compared
    browser.get((root / "index.html").as_uri())
    _wait(browser, "return window.libraryReady > 0;", "the page's script never finished")
    _open_all(browser)
    # The guitar's lowest pitch at velocity 127: a nearest key and a real note.
    note = "document.querySelectorAll('button.note')[1]"
    browser.execute_script(f"{note}.click();")
    _wait(browser, "return document.querySelectorAll('#ab button').length === 3;", "the A/B buttons never came")
    assert browser.execute_script("return [...document.querySelectorAll('#ab button')].map(b => "
                                  "[b.textContent, b.getAttribute('aria-pressed')]);") == \
        [["model", "true"], ["nearest key", "false"], ["real", "false"]]
    # A click on "real" points the player and the picture at the real note, plays it, and presses the button.
    browser.execute_script("[...document.querySelectorAll('#ab button')].find(b => b.textContent === 'real').click();")
    real = entries[rows[1]["path"]]["real"]
    _wait(browser, f"const a = document.getElementById('player'); return !a.paused && a.currentTime > 0 && "
                   f"a.currentSrc.endsWith('{real}');", "the real note never played")
    state = browser.execute_script(
        "return [document.getElementById('player').currentSrc, document.getElementById('picture').src, "
        "[...document.querySelectorAll('#ab button')].map(b => b.getAttribute('aria-pressed'))];")
    assert state[0] == (root / real).as_uri() and state[1] == (root / page.png_path(real)).as_uri()
    assert state[2] == ["false", "false", "true"]
    # Back to the model: its own note again.
    browser.execute_script("document.querySelector('#ab button').click();")
    _wait(browser, f"return document.getElementById('player').currentSrc.endsWith('{rows[1]['path']}');",
          "the model button did not bring the model's note back")
    # A note without compare files: no A/B buttons.
    browser.execute_script("[...document.querySelectorAll('button.note')].at(-1).click();")
    _wait(browser, "return document.querySelectorAll('#ab button').length === 0;", "the mix's note kept A/B buttons")
    assert severe_errors(browser) == []
