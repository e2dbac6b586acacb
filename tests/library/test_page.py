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


def test_html_lists_every_note_once_with_relative_links_only(library):
    root, rows = library
    text = (root / "index.html").read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "http://" not in text and "https://" not in text and "//" not in re.sub(r"<style>.*?</style>", "", text, flags=re.S)
    for row in rows:
        audio, png = html.escape(quote(row["path"])), html.escape(quote(page.png_path(row["path"])))
        assert text.count(f'src="{audio}"') == 1, row["path"]
        assert text.count(f'src="{png}"') == 1, row["path"]
    assert text.count("<audio controls preload=\"none\"") == len(rows) == 12
    assert text.count('<img loading="lazy"') == len(rows)
    # Names escaped: the mix's name and spec appear, never raw '&' from it.
    assert "mix a&amp;b #1" in text and "mix a&b" not in text
    assert "guitar_acoustic_000:70,flute_synthetic_001:30" in text
    assert "2 instruments, 12 notes" in text
    # Pitches as MIDI numbers and note names, velocities as columns.
    for pitch, name in ((58, "A#3"), (60, "C4"), (64, "E4")):
        assert f"{pitch}<br>{name}" in text
    assert "<th>velocity 25</th>" in text and "<th>velocity 127</th>" in text
    # The sampler files the formats imply, linked by name; only those asked for.
    for name in ("guitar_acoustic_000.sfz", "guitar_acoustic_000.dspreset", "mix%20a%26b%20%231.sfz", "library.sf2"):
        assert f'href="{name}"' in text, name
    only_sfz = page.build(instrument_maps(rows), None, formats=("sfz",)).decode()
    assert 'href="guitar_acoustic_000.sfz"' in only_sfz and ".dspreset" not in only_sfz and "library.sf2" not in only_sfz


@pytest.fixture(scope="module")
def browser():
    with chromium("the library page's browser test") as chrome:
        yield chrome


def _wait(browser, script: str, message: str, timeout: float = 15):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout, poll_frequency=0.1).until(lambda b: b.execute_script(script), message=message)


def test_page_from_disk_in_chromium(library, browser):
    root, rows = library
    browser.get((root / "index.html").as_uri())
    assert browser.title == "sing-ray sample library"

    # Every player's source resolves: load each one's metadata.
    browser.execute_script("document.querySelectorAll('audio').forEach(a => { a.preload = 'metadata'; a.load(); });")
    _wait(browser, "return [...document.querySelectorAll('audio')].every(a => a.readyState >= 1 || a.error);",
          "the players never loaded their metadata")
    players = browser.execute_script(
        "return [...document.querySelectorAll('audio')].map(a => ({src: a.currentSrc, ready: a.readyState, "
        "error: a.error && a.error.code, duration: a.duration}));")
    assert len(players) == len(rows)
    assert [p for p in players if p["error"] or abs(p["duration"] - 4.0) > 0.01] == []
    assert {p["src"] for p in players} == {(root / r["path"]).as_uri() for r in rows}

    # Every spectrogram loads (lazy ones too, made eager).
    browser.execute_script("document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; });")
    _wait(browser, "return [...document.querySelectorAll('img')].every(i => i.complete);", "the images never loaded")
    images = browser.execute_script("return [...document.querySelectorAll('img')].map(i => [i.naturalWidth, i.naturalHeight]);")
    assert images == [[200, 64]] * len(rows)

    # One player at a time: starting a second pauses the first.
    browser.execute_script("const a = document.querySelectorAll('audio'); a[0].play();")
    _wait(browser, "return !document.querySelectorAll('audio')[0].paused;", "the first player never started")
    browser.execute_script("const a = document.querySelectorAll('audio'); a[1].play();")
    _wait(browser, "const a = document.querySelectorAll('audio'); return a[0].paused && !a[1].paused;",
          "starting the second player did not pause the first")

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


def test_page_has_a_b_buttons_where_a_note_has_compare_files(compared):
    root, rows, entries = compared
    text = (root / "index.html").read_text(encoding="utf-8")
    buttons = re.findall(r'<button type="button" data-audio="([^"]+)" data-image="([^"]+)" '
                         r'aria-pressed="(true|false)" title="([^"]*)">([^<]+)</button>', text)
    # 6 guitar notes: model and nearest key each, real at velocity 127 (3 notes); the mix has no buttons.
    labels = [b[4] for b in buttons]
    assert labels.count("model") == 6 and labels.count("nearest key") == 6 and labels.count("real") == 3
    assert len(buttons) == 15
    for audio, image, pressed, title, label in buttons:
        assert (root / html.unescape(audio)).is_file() and (root / html.unescape(image)).is_file(), audio
        assert (pressed == "true") == (label == "model")
        if label == "nearest key":
            assert "resampled +2 semitones" in title and html.unescape(audio).startswith("compare/")
    assert "long-term spectrum 1.5 dB from the real note" in text
    # The players are still one per note, each on its model note.
    assert text.count('<audio controls preload="none"') == len(rows)
    assert "6 of 12 notes have a nearest key, 3 a real note" in text
    assert "the model 4.2 dB, the nearest key 1.5 dB" in text
    # No compare entries: no buttons, no paragraph (the page of a library rendered without a dataset).
    plain = page.build(instrument_maps(rows), None).decode()
    assert "data-audio" not in plain and "A/B" not in plain


def test_a_b_buttons_switch_the_player_in_chromium(compared, browser):
    root, rows, entries = compared
    browser.get((root / "index.html").as_uri())
    # Every button's file loads as audio (4 s) and its spectrogram as a picture.
    sources = browser.execute_script(
        "return [...document.querySelectorAll('div.ab button')].map(b => [b.dataset.audio, b.dataset.image]);")
    assert len(sources) == 15
    browser.execute_script(
        "window.probes = arguments[0].map(([a, i]) => { const p = new Audio(a); p.preload = 'metadata'; "
        "const im = new Image(); im.src = i; return [p, im]; });", sources)
    _wait(browser, "return window.probes.every(([p, im]) => (p.readyState >= 1 || p.error) && im.complete);",
          "the buttons' files never loaded")
    loaded = browser.execute_script(
        "return window.probes.map(([p, im]) => [p.error && p.error.code, p.duration, im.naturalWidth]);")
    assert [x for x in loaded if x[0] or abs(x[1] - 4.0) > 0.01 or x[2] != page.WIDTH] == []

    # A click on "real" points the note's player and picture at the real note, plays it, and presses the button.
    cell = "document.querySelectorAll('td[title]')[1]"        # the guitar's lowest pitch at velocity 127
    browser.execute_script(
        f"[...{cell}.querySelectorAll('div.ab button')].find(b => b.textContent === 'real').click();")
    _wait(browser, f"const a = {cell}.querySelector('audio'); return !a.paused && a.currentTime > 0;",
          "the real note never played")
    state = browser.execute_script(
        f"const c = {cell}; return [c.querySelector('audio').currentSrc, c.querySelector('img').src, "
        "[...c.querySelectorAll('div.ab button')].map(b => b.getAttribute('aria-pressed'))];")
    real = entries[rows[1]["path"]]["real"]
    assert state[0] == (root / real).as_uri() and state[1] == (root / page.png_path(real)).as_uri()
    assert state[2] == ["false", "false", "true"]
    # Back to the model: its own note again; still one player at a time.
    browser.execute_script(f"{cell}.querySelector('div.ab button').click();")
    _wait(browser, f"return {cell}.querySelector('audio').currentSrc.endsWith('{rows[1]['path']}');",
          "the model button did not bring the model's note back")
    assert severe_errors(browser) == []
