"""How fast the audition page opens as a library grows: a benchmark, not a test (pytest does not collect it).

For libraries of N synthetic instruments of 88 pitches x 5 velocities (the page's data made
directly, as tests/library/test_page_scale.py does; no note file needed), it prints the page's
size and build time, then in headless Chromium opened from disk: the time from navigation to
the instrument list on screen, and to one instrument's grid of 440 notes drawn after a click.
Medians of --repeats loads.

    .venv/bin/python tests/library/bench_page.py --instruments 100,300,1000,3000
    .venv/bin/python tests/library/bench_page.py --corpus-json corpus/corpus.json

With ``--corpus-json`` the library is the SoundFont corpus's instruments instead (their names,
pitch ranges and labels, five velocities; sing-ray data soundfont --corpus writes the file).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))      # tests/: browser.py

from browser import chromium  # noqa: E402
from library.test_page_scale import synthetic_library  # noqa: E402
from sing_ray.library import page  # noqa: E402
from sing_ray.library.mapping import instrument_maps, read_instrument_info  # noqa: E402

VELOCITIES = (25, 50, 75, 100, 127)


def corpus_library(path: str) -> tuple[list[dict], dict]:
    """``(rows, info)`` of a corpus.json's instruments: each over its pitches, at five velocities."""
    import json

    data = json.loads(Path(path).read_text())
    rows = []
    for inst in data["instruments"]:
        name, (lo, hi) = inst["instrument_str"], inst["pitches"]
        rows += [{"instrument": name, "pitch": p, "velocity": v, "path": page.note_file(name, p, v, "wav"), "mix": ""}
                 for p in range(lo, hi + 1) for v in VELOCITIES]
    return rows, read_instrument_info(data)


def measure(browser, path: Path, repeats: int) -> tuple[float, float]:
    """Median ms from navigation to the list on screen, and from a click to an instrument's grid."""
    listed, opened = [], []
    for _ in range(repeats):
        browser.get(path.as_uri())
        deadline = time.time() + 60
        while not browser.execute_script("return window.libraryReady > 0;"):
            if time.time() > deadline:
                raise RuntimeError(f"{path}: the page's script never finished")
            time.sleep(0.01)
        listed.append(browser.execute_script("return window.libraryReady;"))
        opened.append(browser.execute_script(
            "const t = performance.now(); const d = document.querySelector('li.inst details'); d.open = true; "
            "d.dispatchEvent(new Event('toggle')); d.querySelector('table').offsetHeight; "
            "return performance.now() - t;"))
    return statistics.median(listed), statistics.median(opened)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instruments", default="100,300,1000,3000", help="comma-separated library sizes")
    parser.add_argument("--repeats", type=int, default=5, help="loads per size (the median is printed)")
    parser.add_argument("--corpus-json", default=None, metavar="FILE",
                        help="time the page of this SoundFont corpus's instruments instead of synthetic ones")
    args = parser.parse_args()
    sizes = [0] if args.corpus_json else [int(n) for n in args.instruments.split(",")]
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp, chromium("the page benchmark") as browser:
        browser.set_window_size(1280, 900)
        for n in sizes:
            rows, info = corpus_library(args.corpus_json) if args.corpus_json else synthetic_library(n)
            maps = instrument_maps(rows)
            n = len(maps)
            started = time.perf_counter()
            html = page.build(maps, info=info)
            built = time.perf_counter() - started
            path = Path(tmp) / f"page-{n}.html"
            path.write_bytes(html)
            listed, opened = measure(browser, path, args.repeats)
            rows_out.append((n, len(rows), len(html) / 1e6, built, listed, opened))
    print(f"{'instruments':>11} {'notes':>9} {'page MB':>8} {'build s':>8} {'list on screen ms':>18} "
          f"{'open 440-note grid ms':>22} {'vs first':>9}")
    for n, notes, mb, built, listed, opened in rows_out:
        print(f"{n:>11,} {notes:>9,} {mb:>8.2f} {built:>8.2f} {listed:>18.0f} {opened:>22.0f} "
              f"{listed / rows_out[0][4]:>8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
