"""The Ray Serve application on 127.0.0.1: concurrent clients, bad requests among them, overload -> 503."""
import io
import json
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
import soundfile as sf

from sing_ray.serve import build_app, parse_note_request, RequestError

from browser import chromium

from .conftest import INSTRUMENTS, make_checkpoint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def serve_url(ray_local, tiny_sing, tmp_path_factory):
    """Serve's HTTP proxy on 127.0.0.1 and a free port; two apps: the normal one and a tight one."""
    from ray import serve

    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(build_app(str(tiny_sing), num_cpus=1, max_batch_size=8, batch_wait_timeout_s=0.02),
                  name="sing", route_prefix="/")
        # One request at a time, two waiting, a slower model: a burst must overflow. Two waiting,
        # not one: a browser fetches the page's stylesheet and script side by side.
        small = make_checkpoint(tmp_path_factory.mktemp("small") / "small.pt", preset="small")
        serve.run(build_app(str(small), num_cpus=1, max_batch_size=1, max_ongoing_requests=1,
                            max_queued_requests=2), name="tight", route_prefix="/tight")
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()


GOOD = [
    {"instrument": "guitar_acoustic_000", "pitch": 60, "velocity": 100},
    {"instrument": "flute_synthetic_001", "pitch": 21, "velocity": 25, "format": "wav"},
    {"instrument": "keyboard_electronic_002", "pitch": 108, "velocity": 127},
    {"mix": {"guitar_acoustic_000": 0.7, "flute_synthetic_001": 0.3}, "pitch": 64, "velocity": 75},
    {"mix": "guitar_acoustic_000:1,keyboard_electronic_002:1", "instrument": "ignored_when_mixing", "pitch": 48,
     "velocity": 50},
    {"morph": {"from": "guitar_acoustic_000", "to": "keyboard_electronic_002", "position": 0.25}, "pitch": 55,
     "velocity": 100},
]
BAD = [
    ('{"instrument": "guitar_acoustic_00", "pitch": 60, "velocity": 100}', 422,
     "instrument: unknown instrument 'guitar_acoustic_00'; close matches: guitar_acoustic_000"),
    ('{"instrument": "guitar_acoustic_000", "pitch": 130, "velocity": 100}', 422, "pitch: 130 outside 0-127"),
    ('{"instrument": "guitar_acoustic_000", "pitch": 60, "velocity": 64}', 422, "velocity: 64 is not one of"),
    ('{"instrument": "guitar_acoustic_000", "pitch": 60.5, "velocity": 100}', 422, "pitch: expected an integer"),
    ('{"instrument": "guitar_acoustic_000", "pitch": 60', 400, "body: malformed JSON"),
    ('[1, 2]', 400, "body: expected a JSON object"),
    ('{"instrument": "guitar_acoustic_000", "pitch": 60, "velocity": 100, "format": "mp3"}', 422, "format:"),
    ('{"instrument": "guitar_acoustic_000", "pitch": 60, "velocity": 100, "pich": 3}', 422, "pich: unknown field"),
    ('{"pitch": 60, "velocity": 100}', 422, "instrument: required"),
    ('{"mix": "guitar_acoustic_000:1,oboe:1", "pitch": 60, "velocity": 100}', 422, "mix: unknown instrument 'oboe'"),
    ('{"morph": {"from": "guitar_acoustic_000", "to": "flute_synthetc_001"}, "pitch": 60, "velocity": 100}', 422,
     "morph.to: unknown instrument 'flute_synthetc_001'; close matches: flute_synthetic_001"),
    ('{"morph": {"from": "oboe", "to": "flute_synthetic_001"}, "pitch": 60, "velocity": 100}', 422,
     "morph.from: unknown instrument 'oboe'"),
    ('{"morph": {"from": "guitar_acoustic_000"}, "pitch": 60, "velocity": 100}', 422, "morph.to: required"),
    ('{"morph": {"from": "guitar_acoustic_000", "to": "flute_synthetic_001", "position": 1.5}, "pitch": 60, '
     '"velocity": 100}', 422, "morph.position: expected a number from 0 (from) to 1 (to), got 1.5"),
    ('{"morph": {"from": "guitar_acoustic_000", "to": "guitar_acoustic_000"}, "pitch": 60, "velocity": 100}', 422,
     "morph: from and to are both 'guitar_acoustic_000'"),
    ('{"morph": {"from": "guitar_acoustic_000", "to": "flute_synthetic_001", "at": 0.5}, "pitch": 60, '
     '"velocity": 100}', 422, "morph.at: unknown field; expected from, to, position"),
    ('{"morph": "guitar_acoustic_000", "pitch": 60, "velocity": 100}', 422, 'morph: expected {"from"'),
    ('{"morph": {"from": "guitar_acoustic_000", "to": "flute_synthetic_001"}, "mix": "guitar_acoustic_000:1", '
     '"pitch": 60, "velocity": 100}', 422, "morph: give mix or morph, not both"),
]


def _check_wav(response, fmt="wav"):
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == f"audio/{fmt}"
    info = sf.info(io.BytesIO(response.content))
    assert (info.frames, info.samplerate, info.channels) == (64000, 16000, 1)
    assert info.format == fmt.upper()


def test_routes_and_concurrent_clients(serve_url):
    health = requests.get(f"{serve_url}/healthz", timeout=30)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    listing = requests.get(f"{serve_url}/instruments", timeout=30).json()
    assert listing["instruments"] == INSTRUMENTS and listing["velocities"] == [25, 50, 75, 100, 127]
    assert requests.get(f"{serve_url}/synthesize", timeout=30).status_code == 405
    assert requests.get(f"{serve_url}/nowhere", timeout=30).status_code == 404

    jobs = [("good", json.dumps(GOOD[i % len(GOOD)]), None) for i in range(20)] + \
           [("bad", body, (status, message)) for body, status, message in BAD]
    jobs = [jobs[i] for i in sorted(range(len(jobs)), key=lambda i: (i * 7) % len(jobs))]   # interleaved
    start = threading.Barrier(12)

    def call(job):
        kind, body, expect = job
        try:
            start.wait(timeout=5)
        except threading.BrokenBarrierError:
            pass
        return job, requests.post(f"{serve_url}/synthesize", data=body, timeout=120)

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(call, jobs))
    for (kind, body, expect), response in results:
        if kind == "good":
            _check_wav(response)
            assert response.headers["x-note"].endswith(
                f"-{json.loads(body)['pitch']:03d}-{json.loads(body)['velocity']:03d}")
        else:
            status, message = expect
            assert response.status_code == status, (body, response.text)
            assert message in response.json()["error"], (body, response.text)
    # Concurrent requests were batched into shared model calls.
    stats = requests.get(f"{serve_url}/healthz", timeout=30).json()
    assert stats["notes"] >= 20 and stats["largest_batch"] > 1 and stats["batches"] < stats["notes"]

    flac = requests.post(f"{serve_url}/synthesize", json={**GOOD[0], "format": "flac"}, timeout=60)
    _check_wav(flac, "flac")


def test_morph_over_http_is_the_mix_of_its_two_instruments(serve_url):
    def note(body):
        response = requests.post(f"{serve_url}/synthesize", json={"pitch": 60, "velocity": 100, **body}, timeout=120)
        _check_wav(response)
        return sf.read(io.BytesIO(response.content), dtype="int16")[0]

    a, b = "guitar_acoustic_000", "keyboard_electronic_002"
    morphed = {t: note({"morph": {"from": a, "to": b, "position": t}}) for t in (0, 0.3, 1)}
    # Position t is the mix (1 - t, t); its ends are the two instruments' own notes (16-bit: 1 LSB apart at most).
    assert np.array_equal(morphed[0.3], note({"mix": {a: 0.7, b: 0.3}}))
    assert np.abs(morphed[0].astype(int) - note({"instrument": a})).max() <= 1
    assert np.abs(morphed[1].astype(int) - note({"instrument": b})).max() <= 1
    assert not np.array_equal(morphed[0.3], morphed[0]) and not np.array_equal(morphed[0.3], morphed[1])
    # The default position is half way.
    assert np.array_equal(note({"morph": {"from": a, "to": b}}), note({"mix": {a: 1, b: 1}}))


def test_overload_answers_503_and_the_rest_still_succeeds(serve_url):
    url = f"{serve_url}/tight/synthesize"
    _check_wav(requests.post(url, json=GOOD[0], timeout=120))     # the app works at its own prefix
    burst = 16
    start = threading.Barrier(burst)

    def call(i):
        start.wait(timeout=10)
        return requests.post(url, json=GOOD[i % 3], timeout=120)

    with ThreadPoolExecutor(max_workers=burst) as pool:
        responses = list(pool.map(call, range(burst)))
    codes = [r.status_code for r in responses]
    assert codes.count(503) >= 1, codes
    assert codes.count(200) >= 1 and set(codes) <= {200, 503}, codes
    for r in responses:
        if r.status_code == 200:
            _check_wav(r)


def test_serve_command_refuses_a_bad_model_before_starting(tmp_path, capsys):
    from sing_ray import cli

    assert cli.main(["serve", "--model", str(tmp_path / "missing.pt"), "--port", "1"]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_request_validation_without_a_server():
    note = parse_note_request(b'{"instrument": "flute_synthetic_001", "pitch": 61, "velocity": 25}', INSTRUMENTS)
    assert (note.instrument, note.pitch, note.velocity, note.fmt) == ("flute_synthetic_001", 61, 25, "wav")
    assert note.note_str == "flute_synthetic_001-061-025"
    mixed = parse_note_request(json.dumps({"mix": "guitar_acoustic_000:3,flute_synthetic_001:1", "pitch": 60,
                                           "velocity": 127, "format": "flac"}), INSTRUMENTS)
    assert mixed.instrument == {"guitar_acoustic_000": 0.75, "flute_synthetic_001": 0.25}
    assert mixed.name.startswith("guitar_flute_mix_synthetic_") and mixed.fmt == "flac"
    morph = parse_note_request(json.dumps({"morph": {"from": "guitar_acoustic_000", "to": "flute_synthetic_001",
                                                     "position": 0.25}, "pitch": 60, "velocity": 127}), INSTRUMENTS)
    assert morph.instrument == {"guitar_acoustic_000": 0.75, "flute_synthetic_001": 0.25}
    assert morph.name.startswith("guitar_flute_mix_synthetic_")
    for body, status, message in BAD:
        with pytest.raises(RequestError, match=re.escape(message)) as err:
            parse_note_request(body, INSTRUMENTS)
        assert err.value.status == status
    with pytest.raises(RequestError, match="velocity: expected an integer"):
        parse_note_request('{"instrument": "flute_synthetic_001", "pitch": 60, "velocity": true}', INSTRUMENTS)


# ---------------------------------------------------------------------------
# The page at GET /, in a real browser
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    with chromium("the page's browser test") as chrome:
        yield chrome


def _page(browser, what: str):
    return browser.execute_script(f"return window.singPage && window.singPage.{what};")


def _wait_page(browser, condition: str, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout, poll_frequency=0.1).until(
        lambda b: b.execute_script(f"const s = window.singPage; return !!(s && ({condition}));"),
        message=f"the page never reached: {condition}")


def _errors(browser):
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_page_plays_keys_mixes_and_shows_server_errors(serve_url, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page = requests.get(f"{serve_url}/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    # Offline: nothing the page loads comes from elsewhere.
    for name in ("/", "/static/app.js", "/static/style.css"):
        text = requests.get(f"{serve_url}{name}", timeout=30).text
        assert "http://" not in text and "https://" not in text, name
    assert requests.get(f"{serve_url}/static/..%2F__init__.py", timeout=30).status_code == 404

    browser.get(f"{serve_url}/")
    _wait_page(browser, "s.ready")
    assert _errors(browser) == []
    assert [o.text for o in Select(browser.find_element(By.ID, "instrument")).options] == INSTRUMENTS
    keys = browser.find_elements(By.CSS_SELECTOR, "#keyboard .key[data-pitch]")
    assert len(keys) == 49 and {int(k.get_attribute("data-pitch")) for k in keys} == set(range(36, 85))

    # A click fetches the note (a 64,000-frame WAV), plays it, draws it and offers it for download.
    browser.find_element(By.CSS_SELECTOR, '.key[data-pitch="60"]').click()
    _wait_page(browser, "s.started >= 1")
    assert (_page(browser, "lastStatus"), _page(browser, "lastFrames"), _page(browser, "requests")) == (200, 64000, 1)
    assert _page(browser, "audioState") == "running"
    painted = browser.execute_script(
        "const c = document.getElementById('spectrogram'); const d = c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 0; i < d.length; i += 4) "
        "n += d[i] + d[i + 1] + d[i + 2] > 0; return n / (d.length / 4);")
    assert painted > 0.05, painted
    link = browser.find_element(By.ID, "download")
    assert link.is_displayed() and link.get_attribute("href").startswith("blob:")
    assert link.get_attribute("download").endswith(".wav")

    # The same note again comes from the page's cache; the computer keyboard plays too ('a' is C4).
    browser.find_element(By.TAG_NAME, "body").send_keys("a")
    _wait_page(browser, "s.started >= 2")
    assert (_page(browser, "requests"), _page(browser, "cacheHits")) == (1, 1)

    # A mix of two instruments: a new request, a note back.
    browser.find_element(By.CSS_SELECTOR, "input[name=timbre][value=mix]").click()
    assert browser.find_element(By.ID, "mix").is_displayed()
    browser.find_element(By.CSS_SELECTOR, '.key[data-pitch="64"]').click()
    _wait_page(browser, "s.started >= 3")
    assert (_page(browser, "requests"), _page(browser, "lastStatus"), _page(browser, "lastFrames")) == (2, 200, 64000)
    sent = browser.execute_script("return requestBody(64);")
    assert json.loads(sent)["mix"] == "guitar_acoustic_000:50,flute_synthetic_001:50"

    # A request the server refuses (a velocity the model does not take) is shown, not swallowed.
    browser.execute_script("const v = document.getElementById('velocity'); v.add(new Option('64', '64')); v.value = '64';")
    browser.find_element(By.CSS_SELECTOR, '.key[data-pitch="65"]').click()
    _wait_page(browser, "s.lastError && s.lastError.status === 422")
    error = browser.find_element(By.ID, "error")
    assert error.is_displayed() and "velocity: 64 is not one of" in error.text
    assert _errors(browser) == [] or all("422" in e["message"] for e in _errors(browser))


def test_page_shows_an_overloaded_server_busy(serve_url, browser):
    from selenium.webdriver.common.by import By

    url = f"{serve_url}/tight/synthesize"
    browser.get(f"{serve_url}/tight/")                    # the page under another route prefix
    _wait_page(browser, "s.ready")
    stop = threading.Event()

    def flood():
        while not stop.is_set():
            try:
                requests.post(url, json=GOOD[0], timeout=120)
            except requests.RequestException:
                pass

    with ThreadPoolExecutor(max_workers=6) as pool:
        for _ in range(6):
            pool.submit(flood)
        try:
            pitch = 40
            while not _page(browser, "lastError") and pitch < 84:
                browser.find_element(By.CSS_SELECTOR, f'.key[data-pitch="{pitch}"]').click()
                pitch += 1
                try:
                    _wait_page(browser, "s.lastError", timeout=3)
                except Exception:
                    pass
        finally:
            stop.set()
    assert _page(browser, "lastError")["status"] == 503
    error = browser.find_element(By.ID, "error")
    assert error.is_displayed() and "busy (503)" in error.text
