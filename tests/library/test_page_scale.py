"""The audition page of a corpus-sized library in headless Chromium: search, filters, the list, audio on demand.

The library is synthetic (its page data is made directly, no model renders it): a few
hundred instruments of 88 pitches x 5 velocities, labelled with families, sources,
SoundFonts and presets as a SoundFont corpus's ``instruments.json`` gives them. Only the
notes the test plays exist as files; the page is served over HTTP on 127.0.0.1 by a
server that records every path asked of it, and opened from disk.

The load time (navigation to the list on screen) is printed, not asserted.
"""
from __future__ import annotations

import http.server
import threading
import time
from functools import partial

import numpy as np
import pytest
import soundfile as sf

from browser import chromium, severe_errors
from sing_ray.library import page
from sing_ray.library.mapping import instrument_maps
from sing_ray.nsynth import FAMILIES, SOURCES

NUM_INSTRUMENTS = 300
PITCHES, VELOCITIES = range(21, 109), (25, 50, 75, 100, 127)
SOUNDFONTS = ("FluidR3_GM.sf2", "TimGM6mb.sf2", "MuseScore_General.sf3", "OPL-3_FM_128M.sf2")
PRESETS = ("Grand Piano", "Nylon Guitar", "Flute", "Church Organ", "Fretless Bass", "Vibraphone", "Brass Section")
PLAYED = (60, 100)                          # the note the tests play, of a few instruments


def synthetic_library(num_instruments: int = NUM_INSTRUMENTS):
    """``(rows, info)``: manifest rows of the full grid and the instruments' labels."""
    rows, info = [], {}
    for i in range(num_instruments):
        family, source = FAMILIES[i % len(FAMILIES)], SOURCES[(i // len(FAMILIES)) % len(SOURCES)]
        name = f"{family}_{source}_{i:03d}"
        info[name] = {"soundfont": SOUNDFONTS[i % len(SOUNDFONTS)], "preset": f"{PRESETS[i % len(PRESETS)]} {i}",
                      "bank": i // 128, "program": i % 128}
        rows += [{"instrument": name, "pitch": p, "velocity": v, "path": page.note_file(name, p, v, "wav"), "mix": ""}
                 for p in PITCHES for v in VELOCITIES]
    return rows, info


def _tone(pitch: int) -> np.ndarray:
    t = np.arange(64000) / 16000
    return (0.3 * np.sin(2 * np.pi * 440 * 2 ** ((pitch - 69) / 12) * t) * 32767).astype(np.int16)


@pytest.fixture(scope="module")
def big_library(tmp_path_factory):
    """The library folder: index.html, and the played note of every instrument with its PNG."""
    root = tmp_path_factory.mktemp("big")
    rows, info = synthetic_library()
    maps = instrument_maps(rows)
    started = time.perf_counter()
    (root / "index.html").write_bytes(page.build(maps, info=info))
    built = time.perf_counter() - started
    for m in maps:
        (root / m.name).mkdir()
        path = page.note_file(m.name, *PLAYED, "wav")
        sf.write(root / path, _tone(PLAYED[0]), 16000, subtype="PCM_16")
        (root / page.png_path(path)).write_bytes(page.note_png(_tone(PLAYED[0])))
    size = (root / "index.html").stat().st_size
    print(f"\npage of {len(maps)} instruments, {len(rows):,} notes: {size / 1e6:.2f} MB, built in {built:.2f} s")
    return root, rows, info


class _Recorder(http.server.SimpleHTTPRequestHandler):
    requested: list[str]

    def do_GET(self):
        self.requested.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(big_library):
    """The library over HTTP on 127.0.0.1 (as from an object store); yields (url, the paths requested)."""
    root = big_library[0]
    requested: list[str] = []
    handler = type("Handler", (_Recorder,), {"requested": requested})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requested
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser():
    with chromium("the large library page's browser test") as chrome:
        chrome.set_window_size(1280, 900)
        yield chrome


def _wait(browser, script: str, message: str, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout, poll_frequency=0.05).until(lambda b: b.execute_script(script), message=message)


def _load(browser, url: str) -> dict:
    """Open the page; its timings in ms (navigation start to parsed, to the list on screen)."""
    browser.get(url)
    _wait(browser, "return window.libraryReady > 0;", "the page's script never finished")
    return browser.execute_script(
        "const n = performance.getEntriesByType('navigation')[0]; return {parsed: n.domInteractive, "
        "loaded: n.loadEventEnd, ready: window.libraryReady};")


def _listed(browser) -> list[str]:
    return browser.execute_script("return [...document.querySelectorAll('li.inst .name')].map(e => e.textContent);")


def _count(browser) -> str:
    return browser.execute_script("return document.getElementById('count').textContent;")


def _set(browser, element: str, value: str):
    browser.execute_script(
        "const e = document.getElementById(arguments[0]); e.value = arguments[1]; "
        "e.dispatchEvent(new Event(e.tagName === 'SELECT' ? 'change' : 'input'));", element, value)


def test_load_time_and_the_list_grows_as_it_scrolls(big_library, served, browser):
    root, rows, info = big_library
    url, _ = served
    for where, address in (("file://", (root / "index.html").as_uri()), ("http://127.0.0.1", f"{url}/index.html")):
        times = [_load(browser, address) for _ in range(3)]
        best = min(times, key=lambda t: t["ready"])
        each = ", ".join(f"{t['ready']:.0f}" for t in times)
        print(f"{where}: {NUM_INSTRUMENTS} instruments, list on screen {best['ready']:.0f} ms after navigation "
              f"(parsed {best['parsed']:.0f} ms; 3 loads: {each} ms)")
    names = sorted(info)
    listed = _listed(browser)
    assert listed == names[:50]                        # the first chunk only
    assert _count(browser).startswith(f"{NUM_INSTRUMENTS} of {NUM_INSTRUMENTS} instruments (50 listed")
    assert browser.execute_script("return document.querySelectorAll('td, audio[src]').length;") == 0
    # Scrolling to the end of the list brings the next chunks, until all are there.
    for _ in range(20):
        browser.execute_script("window.scrollTo(0, document.body.scrollHeight);")
        time.sleep(0.1)
        if len(_listed(browser)) == NUM_INSTRUMENTS:
            break
    assert _listed(browser) == names
    assert _count(browser) == f"{NUM_INSTRUMENTS} of {NUM_INSTRUMENTS} instruments"
    assert severe_errors(browser) == []


def test_search_and_filters_narrow_the_list(big_library, browser):
    root, rows, info = big_library
    _load(browser, (root / "index.html").as_uri())
    families = browser.execute_script("return [...document.getElementById('family').options].map(o => o.value);")
    assert families == [""] + sorted(FAMILIES)
    soundfonts = browser.execute_script("return [...document.getElementById('soundfont').options].map(o => o.text);")
    assert soundfonts[1:] == [f"{s} ({NUM_INSTRUMENTS // len(SOUNDFONTS)})" for s in sorted(SOUNDFONTS)]

    def expect(predicate) -> list[str]:
        return [n for n in sorted(info) if predicate(n)]

    _set(browser, "search", "flute")                   # a family in the name, and the "Flute" presets
    flutes = expect(lambda n: n.startswith("flute_") or "Flute" in info[n]["preset"])
    assert len(flutes) > 50                            # more than the first chunk
    assert _listed(browser) == flutes[:50] and _count(browser).startswith(f"{len(flutes)} of {NUM_INSTRUMENTS} ")
    _set(browser, "search", "")
    _set(browser, "family", "guitar")
    _set(browser, "source", "electronic")
    assert _listed(browser) == expect(lambda n: n.startswith("guitar_electronic_"))
    _set(browser, "soundfont", "TimGM6mb.sf2")
    both = expect(lambda n: n.startswith("guitar_electronic_") and info[n]["soundfont"] == "TimGM6mb.sf2")
    assert _listed(browser) == both and both
    for key in ("family", "source", "soundfont"):
        _set(browser, key, "")
    # A preset name, two words in any order, any case; then a SoundFont's name typed in the box.
    _set(browser, "search", "organ CHURCH")
    assert _listed(browser) == expect(lambda n: "Church Organ" in info[n]["preset"])
    _set(browser, "search", "opl-3")
    opl = expect(lambda n: info[n]["soundfont"].startswith("OPL-3"))
    assert _listed(browser)[:50] == opl[:50] and _count(browser).startswith(f"{len(opl)} of ")
    _set(browser, "search", "no such instrument")
    assert _listed(browser) == [] and _count(browser) == f"0 of {NUM_INSTRUMENTS} instruments"
    assert severe_errors(browser) == []


def test_playing_a_note_fetches_that_note_only(big_library, served, browser):
    root, rows, info = big_library
    url, requested = served
    requested.clear()
    _load(browser, f"{url}/index.html")
    assert requested == ["/index.html"]                # the page alone: data and script are inline
    name = sorted(info)[7]
    _set(browser, "search", name)
    assert _listed(browser) == [name]
    browser.execute_script("document.querySelector('li.inst details').open = true;")
    _wait(browser, "return document.querySelectorAll('button.note').length === 440;", "the grid was never drawn")
    pictures = [p for p in requested if p.endswith(".png")]
    assert requested[0] == "/index.html" and not [p for p in requested if p.endswith(".wav")]
    # The spectrograms are lazy: those of the rows near the screen load, not all 440.
    assert len(pictures) < 440
    browser.execute_script(
        "document.querySelector(`button.note[data-pitch='${arguments[0]}'][data-velocity='${arguments[1]}']`).click();",
        *PLAYED)
    _wait(browser, "const a = document.getElementById('player'); return !a.paused && a.currentTime > 0;",
          "the note never played")
    audio = [p for p in requested if not p.endswith((".png", ".html"))]
    assert set(audio) == {"/" + page.note_file(name, *PLAYED, "wav")}
    assert browser.execute_script("return document.getElementById('now').textContent;") == \
        f"{name} C4 (60) velocity 100"
    # Only the spectrograms this synthetic library lacks (it holds the played notes' alone) fail.
    assert [e for e in severe_errors(browser) if not e["message"].split()[0].endswith(".png")] == []
