"""``index.html``: a static audition page for a library of any size, notes loaded only when played.

The page sits at the library's root, beside the sampler files. It carries the library
as one JSON block (:func:`page_data`: per instrument its name, labels, pitches,
velocities and sampler files; a note's path follows from them) and a few hundred lines
of inline script that list the instruments a chunk at a time as the list scrolls
(a thousand instruments cost no more to open than fifty), with a search box (name,
family, source, SoundFont, preset, mix recipe) and filters by family, source and
SoundFont. Opening an instrument draws its grid: one row per rendered pitch (its MIDI
number and note name, C4 = 60), one column per rendered velocity, each cell a play
button and the note's spectrogram (a small PNG beside the sample, :func:`png_path`,
drawn by :func:`note_png` as the note is written; ``loading="lazy"``). The page has
one player: a note's audio is fetched when its button is pressed, never before.

Every link is relative and the CSS and the script are inline, so the folder works as it
is: opened from disk (``file://``), copied anywhere, or served from an object store.

Rendered with ``--compare-dataset``, a note with a nearest key or a real note beside it
(:mod:`.compare`) gets A/B buttons in the player when it plays: model, nearest key (the
sampler's version) and real, each pointing the player and the spectrogram at its file.
"""
from __future__ import annotations

import html
import io
import json
import posixpath
import re
from functools import lru_cache
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import quote

import numpy as np

from ..nsynth import NUM_FRAMES, SAMPLE_RATE
from .mapping import InstrumentMap, instrument_labels

NAME = "page"
INDEX = "index.html"

# The spectrogram: WIDTH frames of an N_FFT-point Hann STFT evenly spaced over the note
# (a hop of ~319 for a 4 s note), HEIGHT log-spaced bands from F_MIN to F_MAX (or Nyquist),
# DB_RANGE dB below the note's loudest band mapped onto the colormap.
WIDTH, HEIGHT = 200, 64
N_FFT = 512
F_MIN, F_MAX = 40.0, 8000.0
DB_RANGE = 80.0

# magma (matplotlib's perceptually uniform colormap) at 17 even steps, dark to bright.
_MAGMA = np.array([
    (0, 0, 4), (10, 8, 34), (29, 17, 71), (54, 16, 107), (81, 18, 124), (106, 28, 129), (131, 38, 129),
    (156, 46, 127), (183, 55, 121), (208, 65, 111), (231, 82, 99), (245, 107, 92), (252, 137, 97),
    (254, 167, 114), (254, 196, 136), (253, 226, 163), (252, 253, 191)], dtype=np.float64)
_LUT = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_MAGMA)), _MAGMA[:, c])
                 for c in range(3)], axis=1).round().astype(np.uint8)

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(pitch: int) -> str:
    """A MIDI key's note name with its octave, sharps for the black keys: 60 is C4, 58 is A#3, 21 is A0."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def png_path(sample_path: str) -> str:
    """The spectrogram PNG beside a sample: its path with the extension replaced by ``.png``."""
    return posixpath.splitext(sample_path)[0] + ".png"


@lru_cache(maxsize=8)
def _analysis(sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The Hann window and the ``(HEIGHT, N_FFT // 2 + 1)`` band weights for one sample rate.

    Each band is a triangle over the FFT bins, centred on a log-spaced frequency and
    reaching its neighbours' centres (at least one bin either side, so the narrow low
    bands interpolate between bins); its weights sum to 1 (a band is a mean power).
    """
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / sample_rate)
    bin_hz = freqs[1]
    centres = np.geomspace(F_MIN, min(F_MAX, sample_rate / 2), HEIGHT)
    ratio = centres[1] / centres[0]
    below = np.maximum(centres - centres / ratio, bin_hz)[:, None]
    above = np.maximum(centres * ratio - centres, bin_hz)[:, None]
    offset = freqs[None, :] - centres[:, None]
    weights = np.maximum(0.0, 1.0 - np.where(offset < 0, -offset / below, offset / above))
    weights /= weights.sum(axis=1, keepdims=True)
    return window, weights.T.astype(np.float32)


def note_png(pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A small spectrogram of one note as PNG bytes (``WIDTH`` x ``HEIGHT`` pixels, magma).

    Time runs left to right over the whole note; frequency (log-spaced, 40 Hz to 8 kHz
    or Nyquist) runs bottom to top; colour is power in dB, clipped to ``DB_RANGE`` dB
    below the note's loudest point. Numpy and Pillow only (a few ms a note).

    Args:
        pcm: the note's samples: int16 (or any integer type, full scale its range) or
            float in [-1, 1]; a 2-D array (frames x channels) is mixed down.
        sample_rate: its sample rate.
    Returns:
        the PNG file's bytes; a silent note gives the colormap's darkest colour throughout.
    """
    from PIL import Image

    x = np.asarray(pcm)
    if x.ndim > 1:
        x = x.mean(axis=1)
    scale = float(np.iinfo(x.dtype).max) + 1 if np.issubdtype(x.dtype, np.integer) else 1.0
    x = x.astype(np.float32) / np.float32(scale)
    if len(x) < N_FFT:
        x = np.pad(x, (0, N_FFT - len(x)))
    window, weights = _analysis(int(sample_rate))
    starts = np.linspace(0, len(x) - N_FFT, WIDTH).round().astype(np.int64)
    spectrum = np.fft.rfft(x[starts[:, None] + np.arange(N_FFT)] * window, axis=1)
    power = (spectrum.real ** 2 + spectrum.imag ** 2) @ weights          # (WIDTH, HEIGHT)
    level = np.zeros(power.shape, dtype=np.uint8)
    peak = float(power.max())
    if peak > 0:
        db = 10 * np.log10(np.maximum(power / peak, 1e-30))               # 0 dB at the peak
        level = ((np.clip(db, -DB_RANGE, 0) / DB_RANGE + 1) * 255 + 0.5).astype(np.uint8)
    rgb = _LUT[level.T[::-1]]                                               # low frequencies at the bottom
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(out, format="PNG", compress_level=1)
    return out.getvalue()



def files(maps: Sequence[InstrumentMap]) -> dict[str, list[InstrumentMap]]:
    """``{"index.html": all the maps}``: one page for the whole library."""
    return {INDEX: list(maps)}


def _url(path: str) -> str:
    """A relative link to ``path`` (relative to the library's root), quoted, for an HTML attribute."""
    return html.escape(quote(path), quote=True)


def _sampler_files(maps: Sequence[InstrumentMap], formats: Sequence[str]) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The sampler files of ``formats`` beside the page, as their modules name them (unknown names skipped).

    Returns:
        ``(library-wide files, {format: {instrument: its file}})``.
    """
    from . import FORMAT_MODULES, format_module

    wide, per_instrument = [], {}
    for fmt in dict.fromkeys(formats):
        if fmt not in FORMAT_MODULES:
            continue
        module = format_module(fmt)
        named = module.files(maps)
        if module.PER_INSTRUMENT:
            per_instrument[fmt] = {group[0].name: rel for rel, group in named.items()}
        else:
            wide += list(named)
    return wide, per_instrument


def note_file(name: str, pitch: int, velocity: int, ext: str) -> str:
    """A note's path as the page's script derives it: ``<name>/<name>-<pitch:03d>-<velocity:03d>.<ext>``."""
    return f"{name}/{name}-{int(pitch):03d}-{int(velocity):03d}.{ext}"


def _compare_choices(path: str, entry: Mapping[str, Any]) -> list[list[str]]:
    """The A/B choices of a note with compare files: ``[label, file, tooltip]`` for model, nearest key, real."""
    lts = entry.get("lts_db") or {}

    def distance(kind: str) -> str:
        return f"; long-term spectrum {lts[kind]:.1f} dB from the real note" if kind in lts else ""

    choices = [["model", path, "the model's note, as the sampler files play it" + distance("model")]]
    if "nearest" in entry:
        shift = int(entry.get("semitones", 0))
        choices.append(["nearest key", entry["nearest"],
                        f"what a sampler plays instead: {entry.get('nearest_note', '')}, a training note, "
                        f"resampled {shift:+d} semitones" + distance("nearest")])
    if "real" in entry:
        choices.append(["real", entry["real"], f"the real note ({entry.get('real_split', '')} split)"])
    return choices


def page_data(maps: Sequence[InstrumentMap], formats: Sequence[str] = ("sfz", "dspreset", "sf2"),
              compare: Mapping[str, Mapping[str, Any]] | None = None,
              info: Mapping[str, Mapping[str, Any]] | None = None) -> dict:
    """What the page's script reads: the library's instruments and the compare files, as JSON-ready data.

    Per instrument: ``name``, ``mix``, the labels of :func:`.mapping.instrument_labels`
    (``family``, ``source``; ``soundfont``, ``bank``, ``program``, ``preset`` where ``info``
    gives them), ``pitches`` and ``velocities`` (sorted), ``ext`` (the samples' extension),
    ``missing`` (``[pitch, velocity]`` of the grid's cells without a note, where any),
    ``paths`` (``{"pitch,velocity": path}`` of the notes whose path is not :func:`note_file`'s,
    where any), ``files`` (``[format, file]`` of its own sampler files) and ``sf2``
    (``[file, bank, program]``: where it plays in the library's SoundFonts). ``compare``:
    ``{note path: [[label, file, tooltip], ...]}``.
    """
    from . import sf2

    _, per_format = _sampler_files(maps, formats)
    presets = sf2.presets(maps) if "sf2" in formats else {}
    info = info or {}
    instruments = []
    for imap in maps:
        pitches = sorted({z.pitch for z in imap.zones})
        velocities = sorted({z.velocity for z in imap.zones})
        ext = posixpath.splitext(imap.zones[0].path)[1].lstrip(".") if imap.zones else ""
        entry: dict[str, Any] = {"name": imap.name, "mix": imap.mix,
                                 **instrument_labels(imap.name, imap.mix, info.get(imap.name)),
                                 "pitches": pitches, "velocities": velocities, "ext": ext}
        have = {(z.pitch, z.velocity): z.path for z in imap.zones}
        missing = [[p, v] for p in pitches for v in velocities if (p, v) not in have]
        if missing:
            entry["missing"] = missing
        stem = f"{imap.name}/{imap.name}-"
        odd = {f"{p},{v}": path for (p, v), path in have.items() if path != f"{stem}{p:03d}-{v:03d}.{ext}"}
        if odd:
            entry["paths"] = odd
        entry["files"] = [[fmt, named[imap.name]] for fmt, named in per_format.items() if imap.name in named]
        if imap.name in presets:
            entry["sf2"] = list(presets[imap.name])
        instruments.append(entry)
    paths = {z.path for m in maps for z in m.zones} if compare else set()
    choices = {path: _compare_choices(path, entry) for path, entry in sorted((compare or {}).items())
               if path in paths}
    return {"instruments": instruments, "compare": choices}


def note_paths(instrument: Mapping[str, Any]) -> dict[tuple[int, int], str]:
    """``{(pitch, velocity): path}`` of one instrument of :func:`page_data`, as the script derives them."""
    missing = {tuple(x) for x in instrument.get("missing", [])}
    odd = instrument.get("paths", {})
    return {(p, v): odd.get(f"{p},{v}", note_file(instrument["name"], p, v, instrument["ext"]))
            for p in instrument["pitches"] for v in instrument["velocities"] if (p, v) not in missing}


_DATA_BLOCK = re.compile(r'<script type="application/json" id="library-data">(.*?)</script>', re.S)


def read_data(page: bytes | str) -> dict:
    """The :func:`page_data` a page carries (its JSON block), read back."""
    text = page.decode("utf-8") if isinstance(page, bytes) else page
    match = _DATA_BLOCK.search(text)
    if match is None:
        raise ValueError("not a library page: no library-data block")
    return json.loads(match.group(1))


def _compare_paragraph(maps: Sequence[InstrumentMap], compare: Mapping[str, Mapping[str, Any]]) -> str:
    """What the A/B buttons play, how many notes have each, and the median distances to the real notes."""
    paths = {z.path for m in maps for z in m.zones}
    entries = [e for p, e in compare.items() if p in paths]
    nearest = sum("nearest" in e for e in entries)
    real = sum("real" in e for e in entries)
    both = [e["lts_db"] for e in entries if "nearest" in (e.get("lts_db") or {})]
    text = (f"<p>A/B listening: a note that has them gets buttons in the player, <em>model</em> plays the "
            f"library's note, <em>nearest key</em> what a sampler holding the training notes plays instead (the "
            f"same instrument and velocity at the nearest other training pitch, resampled: never the note "
            f"itself), <em>real</em> the dataset's own recording of the note; the spectrogram follows. "
            f"{nearest} of {len(paths)} notes have a nearest key, {real} a real note.")
    if both:
        model = float(np.median([d["model"] for d in both]))
        near = float(np.median([d["nearest"] for d in both]))
        text += (f" Median long-term spectrum distance to the real note over the {len(both)} notes with both: "
                 f"the model {model:.1f} dB, the nearest key {near:.1f} dB (a button's tooltip gives its note's).")
    return text + "</p>"


_STYLE = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em 1.5em 9em; color: #222;
  background: #fafafa; }
h1 { font-size: 1.5em; margin: 0 0 .3em; }
code { background: #eee; padding: 0 .3em; border-radius: 3px; }
form.find { display: flex; flex-wrap: wrap; gap: .5em; align-items: center; margin: 1em 0 .5em;
  position: sticky; top: 0; background: #fafafa; padding: .4em 0; z-index: 2; }
form.find input[type=search] { flex: 1 1 20em; font: inherit; padding: .3em .5em; }
form.find select { font: inherit; padding: .2em; max-width: 16em; }
#count { color: #555; }
ol.instruments { list-style: none; padding: 0; margin: 0; }
li.inst { border-bottom: 1px solid #e4e4e4; }
li.inst summary { cursor: pointer; padding: .35em .2em; }
li.inst summary .name { font-weight: 600; }
.tag { display: inline-block; font-size: 12px; background: #e8e8ef; border-radius: 3px; padding: 0 .4em;
  margin-left: .3em; }
.notes { color: #666; font-size: 12px; margin-left: .5em; }
div.body { padding: 0 0 1em 1.2em; overflow-x: auto; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ddd; padding: 4px; vertical-align: top; background: #fff; }
th.pitch { text-align: right; font-variant-numeric: tabular-nums; }
td img { display: block; width: 200px; height: 64px; background: #000004; }
td button.note { display: block; width: 200px; margin-top: 3px; font: 12px system-ui, sans-serif; cursor: pointer; }
td button.note[aria-pressed="true"] { background: #333; color: #fff; }
td.none { color: #aaa; text-align: center; vertical-align: middle; }
#more { margin: 1em 0; }
#bar { position: fixed; left: 0; right: 0; bottom: 0; display: flex; gap: 1em; align-items: center;
  background: #fff; border-top: 1px solid #ccc; padding: .5em 1.5em; z-index: 3; }
#bar img { width: 200px; height: 64px; background: #000004; }
#bar audio { width: 24em; max-width: 100%; display: block; }
div.ab { display: flex; gap: 2px; margin-top: 2px; }
div.ab button { white-space: nowrap; font: 11px system-ui, sans-serif; padding: 1px 6px;
  border: 1px solid #bbb; background: #f4f4f4; border-radius: 3px; cursor: pointer; }
div.ab button[aria-pressed="true"] { background: #333; color: #fff; border-color: #333; }
"""

# The list: the filtered instruments a chunk at a time, the next chunk when the end of the list
# comes near the screen (an IntersectionObserver on #more, re-armed after each chunk). An
# instrument's grid is drawn when it is first opened. One player: a note's button points it at
# the note's file and plays it, so nothing is fetched before a note is played.
_SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("library-data").textContent);
  var CHUNK = 50, NOTE_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
  var list = document.getElementById("instruments"), more = document.getElementById("more");
  var search = document.getElementById("search"), count = document.getElementById("count");
  var filters = {family: document.getElementById("family"), source: document.getElementById("source"),
                 soundfont: document.getElementById("soundfont")};
  var player = document.getElementById("player"), picture = document.getElementById("picture");
  var now = document.getElementById("now"), ab = document.getElementById("ab");
  var instruments = data.instruments, matches = [], shown = 0, pressed = null;

  instruments.forEach(function (inst, i) {
    inst.index = i;
    inst.haystack = [inst.name, inst.family, inst.source, inst.soundfont || "", inst.preset || "",
                     inst.mix || ""].join(" ").toLowerCase();
  });
  function pad3(n) { return ("00" + n).slice(-3); }
  function noteName(p) { return NOTE_NAMES[p % 12] + (Math.floor(p / 12) - 1); }
  function notePath(inst, p, v) {
    var odd = inst.paths && inst.paths[p + "," + v];
    return odd || inst.name + "/" + inst.name + "-" + pad3(p) + "-" + pad3(v) + "." + inst.ext;
  }
  function url(path) { return path.split("/").map(encodeURIComponent).join("/"); }
  function png(path) { return path.replace(/\.[^./]*$/, "") + ".png"; }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  function fillFilter(select, key, what) {
    var counts = {};
    instruments.forEach(function (inst) { if (inst[key]) counts[inst[key]] = (counts[inst[key]] || 0) + 1; });
    var values = Object.keys(counts).sort();
    if (!values.length) { select.hidden = true; return; }
    select.appendChild(new Option("every " + what + " (" + values.length + ")", ""));
    values.forEach(function (v) { select.appendChild(new Option(v + " (" + counts[v] + ")", v)); });
  }

  function summary(inst) {
    var s = el("summary");
    s.appendChild(el("span", inst.name, "name"));
    [inst.family, inst.source, inst.soundfont, inst.preset].forEach(function (t) {
      if (t) s.appendChild(el("span", t, "tag"));
    });
    var notes = inst.pitches.length * inst.velocities.length - (inst.missing ? inst.missing.length : 0);
    s.appendChild(el("span", notes + " notes: " + inst.pitches.length + " pitches x " + inst.velocities.length +
                     " velocities", "notes"));
    return s;
  }

  function item(inst) {
    var li = el("li", null, "inst"), details = el("details");
    li.id = "i" + inst.index;
    details.dataset.index = inst.index;
    details.appendChild(summary(inst));
    li.appendChild(details);
    return li;
  }

  // The zones of sing_ray.library.mapping: a pitch covers the keys up to the midpoints to its
  // neighbours (the lower one takes the middle key), the ends stretching to 0 and 127; a velocity
  // covers those above the next softer one, the loudest stretching to 127.
  function keyRanges(pitches) {
    return pitches.map(function (p, i) {
      return [p, i === 0 ? 0 : Math.floor((pitches[i - 1] + p) / 2) + 1,
              i === pitches.length - 1 ? 127 : Math.floor((p + pitches[i + 1]) / 2)];
    });
  }
  function velocityRanges(velocities) {
    return velocities.map(function (v, i) {
      return [v, i === 0 ? 1 : velocities[i - 1] + 1, i === velocities.length - 1 ? 127 : v];
    });
  }

  function grid(inst) {
    var body = el("div", null, "body"), missing = {};
    (inst.missing || []).forEach(function (m) { missing[m[0] + "," + m[1]] = true; });
    if (inst.mix) {
      var mix = el("p", "Mix: ");
      mix.appendChild(el("code", inst.mix));
      body.appendChild(mix);
    }
    var where = el("p");
    (inst.files || []).forEach(function (f, i) {
      var a = el("a", f[1]);
      a.href = url(f[1]);
      if (i) where.appendChild(document.createTextNode(" \u00b7 "));
      where.appendChild(a);
    });
    if (inst.sf2) {
      var a = el("a", inst.sf2[0]);
      a.href = url(inst.sf2[0]);
      where.appendChild(document.createTextNode((inst.files && inst.files.length ? " \u00b7 " : "") + "SoundFont "));
      where.appendChild(a);
      where.appendChild(document.createTextNode(" bank " + inst.sf2[1] + " program " + inst.sf2[2]));
    }
    if (where.childNodes.length) body.appendChild(where);
    var keysOf = {};
    inst.velocities.forEach(function (v) {
      var layer = inst.pitches.filter(function (p) { return !missing[p + "," + v]; });
      keyRanges(layer).forEach(function (r) { keysOf[r[0] + "," + v] = r; });
    });
    var vels = {};
    velocityRanges(inst.velocities).forEach(function (r) { vels[r[0]] = r; });
    var table = el("table"), head = el("tr");
    head.appendChild(el("th", "pitch"));
    inst.velocities.forEach(function (v) { head.appendChild(el("th", "velocity " + v)); });
    table.appendChild(el("thead")).appendChild(head);
    var tbody = table.appendChild(el("tbody"));
    inst.pitches.forEach(function (p) {
      var tr = el("tr"), th = el("th", null, "pitch");
      th.appendChild(document.createTextNode(String(p)));
      th.appendChild(el("br"));
      th.appendChild(document.createTextNode(noteName(p)));
      tr.appendChild(th);
      inst.velocities.forEach(function (v) {
        if (missing[p + "," + v]) { tr.appendChild(el("td", "-", "none")); return; }
        var td = el("td"), path = notePath(inst, p, v), k = keysOf[p + "," + v], r = vels[v];
        td.title = "plays keys " + k[1] + "-" + k[2] + " (" + noteName(k[1]) + "-" + noteName(k[2]) +
                   "), velocities " + r[1] + "-" + r[2];
        var img = el("img");
        img.loading = "lazy";
        img.width = 200; img.height = 64;
        img.alt = inst.name + " " + noteName(p) + " (" + p + ") velocity " + v + " spectrogram";
        img.src = url(png(path));
        var button = el("button", "\u25b6 " + noteName(p) + " v" + v, "note");
        button.type = "button";
        button.dataset.index = inst.index; button.dataset.pitch = p; button.dataset.velocity = v;
        button.setAttribute("aria-pressed", "false");
        td.appendChild(img);
        td.appendChild(button);
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
    body.appendChild(table);
    return body;
  }

  function showMore() {
    var end = Math.min(shown + CHUNK, matches.length), chunk = document.createDocumentFragment();
    for (var i = shown; i < end; i++) chunk.appendChild(item(matches[i]));
    list.appendChild(chunk);
    shown = end;
    more.hidden = shown >= matches.length;
    count.textContent = matches.length + " of " + instruments.length + " instruments" +
                        (shown < matches.length ? " (" + shown + " listed, more as you scroll)" : "");
    if (observer && !more.hidden) { observer.unobserve(more); observer.observe(more); }
  }

  function apply() {
    var terms = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    var wanted = {family: filters.family.value, source: filters.source.value, soundfont: filters.soundfont.value};
    matches = instruments.filter(function (inst) {
      for (var key in wanted) if (wanted[key] && inst[key] !== wanted[key]) return false;
      return terms.every(function (t) { return inst.haystack.indexOf(t) >= 0; });
    });
    list.textContent = "";
    shown = 0;
    showMore();
  }

  function play(path, label) {
    player.src = url(path);
    picture.src = url(png(path));
    picture.hidden = false;
    now.textContent = label;
    var started = player.play();
    if (started && started.catch) started.catch(function (err) { now.textContent = label + ": " + err.message; });
  }

  function abButtons(path) {
    ab.textContent = "";
    (data.compare[path] || []).forEach(function (choice, i) {
      var b = el("button", choice[0]);
      b.type = "button";
      b.title = choice[2];
      b.dataset.audio = choice[1];
      b.setAttribute("aria-pressed", String(i === 0));
      ab.appendChild(b);
    });
  }

  var observer = "IntersectionObserver" in window ? new IntersectionObserver(function (entries) {
    if (entries.some(function (e) { return e.isIntersecting; }) && shown < matches.length) showMore();
  }, {rootMargin: "600px"}) : null;
  more.addEventListener("click", showMore);
  list.addEventListener("toggle", function (event) {
    var details = event.target;
    if (details.open && !details.dataset.drawn) {
      details.dataset.drawn = "1";
      details.appendChild(grid(instruments[+details.dataset.index]));
    }
  }, true);
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.note");
    if (button) {
      var inst = instruments[+button.dataset.index], p = +button.dataset.pitch, v = +button.dataset.velocity;
      var path = notePath(inst, p, v);
      if (pressed) pressed.setAttribute("aria-pressed", "false");
      pressed = button;
      button.setAttribute("aria-pressed", "true");
      abButtons(path);
      play(path, inst.name + " " + noteName(p) + " (" + p + ") velocity " + v);
      return;
    }
    var choice = event.target.closest("div.ab button");
    if (choice) {
      ab.querySelectorAll("button").forEach(function (b) { b.setAttribute("aria-pressed", String(b === choice)); });
      play(choice.dataset.audio, now.textContent.replace(/ \[.*\]$/, "") + " [" + choice.textContent + "]");
    }
  });
  search.addEventListener("input", apply);
  Object.keys(filters).forEach(function (key) { filters[key].addEventListener("change", apply); });
  document.getElementById("find").addEventListener("submit", function (event) { event.preventDefault(); });
  fillFilter(filters.family, "family", "family");
  fillFilter(filters.source, "source", "source");
  fillFilter(filters.soundfont, "soundfont", "SoundFont");
  apply();
  window.libraryReady = performance.now();
})();
"""


def _json_block(data: Any) -> str:
    # Inside <script>, "</" would end the element: "<" is written as \u003c (still the same JSON).
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).replace("<", "\\u003c")


def build(maps: Sequence[InstrumentMap], read_pcm: Callable[[str], np.ndarray] | None = None, *,
          formats: Sequence[str] = ("sfz", "dspreset", "sf2"),
          compare: Mapping[str, Mapping[str, Any]] | None = None,
          info: Mapping[str, Mapping[str, Any]] | None = None) -> bytes:
    """The UTF-8 HTML of ``index.html``.

    Args:
        maps: the library's instruments (:func:`.mapping.instrument_maps`).
        read_pcm: unused (the page only links the samples and their PNGs); here for the
            format modules' common signature.
        formats: the sampler formats written beside the page: ``sfz`` and ``dspreset``
            link ``<instrument>.sfz`` / ``.dspreset`` in each instrument's grid, ``sf2`` the
            library's SoundFonts at the top and each instrument's file, bank and program in
            its grid; other names are skipped.
        compare: ``{note path: entry}`` of the notes with a nearest key or a real note beside
            them (:func:`.compare.read_entries`): when such a note plays, the player gets A/B
            buttons (model, nearest key, real) that switch it and the spectrogram.
        info: ``{instrument: labels}`` from the library's ``instruments.json``
            (:func:`.mapping.read_instrument_info`): SoundFont, preset, family and source
            where the corpus's metadata gives them.
    Returns:
        a self-contained page (inline CSS, script and data; relative links only).
    """
    library_wide, per_format = _sampler_files(maps, formats)
    data = page_data(maps, formats, compare, info)
    notes = sum(len(m.zones) for m in maps)
    kinds = sorted({i["ext"].upper() for i in data["instruments"] if i["ext"]}
                   | {p.rsplit(".", 1)[-1].upper() for i in data["instruments"] for p in i.get("paths", {}).values()})
    seconds = NUM_FRAMES / SAMPLE_RATE
    lines = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">', "<title>sing-ray sample library</title>",
        f"<style>{_STYLE}</style>", "</head>", "<body>",
        "<header>", "<h1>sing-ray sample library</h1>",
        f"<p>Notes rendered by sing-ray from a SING neural synthesizer (Défossez et al. 2018): "
        f"{len(maps)} instrument{'s' if len(maps) != 1 else ''}, {notes} note{'s' if notes != 1 else ''} "
        f"({', '.join(kinds) or 'no samples'}, {SAMPLE_RATE // 1000} kHz mono, {seconds:g} s each). "
        f"Open an instrument for its notes: each has a play button and a spectrogram (time left to right, "
        f"{F_MIN:g} Hz to {F_MAX / 1000:g} kHz bottom to top, {DB_RANGE:g} dB); a note's audio loads when "
        f"it is played.</p>",
    ]
    if library_wide or per_format:
        parts = [f'<a href="{_url(f)}">{html.escape(f)}</a>' for f in library_wide]
        parts += [f"one <code>.{fmt}</code> per instrument" for fmt in per_format]
        lines.append(f"<p>Sampler files beside this page: {', '.join(parts)}.</p>")
    if compare:
        lines.append(_compare_paragraph(maps, compare))
    lines += [
        '<form class="find" id="find" role="search">',
        '<input type="search" id="search" placeholder="search: name, family, source, SoundFont, preset" '
        'aria-label="search the instruments" autocomplete="off">',
        '<select id="family" aria-label="family"></select>', '<select id="source" aria-label="source"></select>',
        '<select id="soundfont" aria-label="SoundFont"></select>',
        '<span id="count" aria-live="polite"></span>', "</form>",
        "<noscript><p>The instrument list needs JavaScript; the notes and sampler files are in this "
        "folder.</p></noscript>",
        "</header>", "<main>", '<ol class="instruments" id="instruments"></ol>',
        '<button type="button" id="more" hidden>more instruments</button>', "</main>",
        '<div id="bar" role="region" aria-label="player">',
        '<img id="picture" width="200" height="64" alt="the playing note\'s spectrogram" hidden>',
        '<div><div id="now">Open an instrument and press a note to play it.</div>',
        '<audio id="player" controls preload="none"></audio>',
        '<div class="ab" id="ab" role="group" aria-label="play"></div></div>', "</div>",
        f'<script type="application/json" id="library-data">{_json_block(data)}</script>',
        f"<script>{_SCRIPT}</script>", "</body>", "</html>", "",
    ]
    return "\n".join(lines).encode("utf-8")
