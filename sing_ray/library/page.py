"""``index.html``: a static audition page for a library, a player and a spectrogram per note.

The page sits at the library's root, beside the sampler files, and lists each
instrument (a mix with its mix spec) as a table: one row per rendered pitch (its
MIDI number and note name, C4 = 60), one column per rendered velocity, each cell
a player (``<audio preload="none">``: nothing loads until it is played) and the
note's spectrogram, a small PNG beside the sample (:func:`png_path`, drawn by
:func:`note_png` as the note is written). Every link is relative and the CSS and
the few lines of script are inline, so the folder works as it is: opened from
disk (``file://``), copied anywhere, or served from an object store.

Rendered with ``--compare-dataset``, a note with a nearest key or a real note beside it
(:mod:`.compare`) gets A/B buttons under its player: model, nearest key (the sampler's
version) and real, each pointing the player and the spectrogram at its file.
"""
from __future__ import annotations

import html
import io
import posixpath
from functools import lru_cache
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import quote

import numpy as np

from ..nsynth import NUM_FRAMES, SAMPLE_RATE
from .mapping import InstrumentMap, Zone

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


def _buttons(zone: Zone, entry: Mapping[str, Any]) -> str:
    """The A/B buttons of a note with compare files: model, nearest key, real (those it has)."""
    lts = entry.get("lts_db") or {}

    def distance(kind: str) -> str:
        return f"; long-term spectrum {lts[kind]:.1f} dB from the real note" if kind in lts else ""

    choices = [("model", zone.path, "the model's note, as the sampler files play it" + distance("model"))]
    if "nearest" in entry:
        shift = int(entry.get("semitones", 0))
        choices.append(("nearest key", entry["nearest"],
                        f"what a sampler plays instead: {entry.get('nearest_note', '')}, a training note, "
                        f"resampled {shift:+d} semitones" + distance("nearest")))
    if "real" in entry:
        choices.append(("real", entry["real"], f"the real note ({entry.get('real_split', '')} split)"))
    return ('<div class="ab" role="group" aria-label="play">' + "".join(
        f'<button type="button" data-audio="{_url(path)}" data-image="{_url(png_path(path))}" '
        f'aria-pressed="{"true" if i == 0 else "false"}" title="{html.escape(text)}">{label}</button>'
        for i, (label, path, text) in enumerate(choices)) + "</div>")


def _cell(zone: Zone | None, instrument: str, entry: Mapping[str, Any] | None = None) -> str:
    if zone is None:
        return '<td class="none">-</td>'
    what = f"{instrument} {note_name(zone.pitch)} ({zone.pitch}) velocity {zone.velocity}"
    plays = (f"plays keys {zone.lokey}-{zone.hikey} ({note_name(zone.lokey)}-{note_name(zone.hikey)}), "
             f"velocities {zone.lovel}-{zone.hivel}" + (", looped" if zone.looped else ""))
    return (f'<td title="{html.escape(plays)}">'
            f'<img loading="lazy" width="{WIDTH}" height="{HEIGHT}" src="{_url(png_path(zone.path))}" '
            f'alt="{html.escape(what)} spectrogram">'
            f'<audio controls preload="none" src="{_url(zone.path)}"></audio>'
            + (_buttons(zone, entry) if entry else "") + "</td>")


def _section(index: int, imap: InstrumentMap, per_instrument: list[str],
             compare: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    compare = compare or {}
    name = html.escape(imap.name)
    pitches = sorted({z.pitch for z in imap.zones})
    velocities = sorted({z.velocity for z in imap.zones})
    by_note = {(z.pitch, z.velocity): z for z in imap.zones}
    lines = [f'<section id="i{index}">', f"<h2>{name}</h2>"]
    if imap.mix:
        lines.append(f'<p class="mix">Mix: <code>{html.escape(imap.mix)}</code></p>')
    lines.append(f"<p>{len(imap.zones)} notes: {len(pitches)} pitches x {len(velocities)} velocities"
                 + "".join(f' &middot; <a href="{_url(f)}">{html.escape(f)}</a>' for f in per_instrument) + "</p>")
    lines.append('<table><thead><tr><th>pitch</th>'
                 + "".join(f"<th>velocity {v}</th>" for v in velocities) + "</tr></thead><tbody>")
    for pitch in pitches:
        cells = []
        for v in velocities:
            zone = by_note.get((pitch, v))
            cells.append(_cell(zone, imap.name, compare.get(zone.path) if zone is not None else None))
        lines.append(f'<tr><th class="pitch">{pitch}<br>{note_name(pitch)}</th>' + "".join(cells) + "</tr>")
    lines += ["</tbody></table>", "</section>"]
    return "\n".join(lines)


def _compare_paragraph(maps: Sequence[InstrumentMap], compare: Mapping[str, Mapping[str, Any]]) -> str:
    """What the A/B buttons play, how many notes have each, and the median distances to the real notes."""
    paths = {z.path for m in maps for z in m.zones}
    entries = [e for p, e in compare.items() if p in paths]
    nearest = sum("nearest" in e for e in entries)
    real = sum("real" in e for e in entries)
    both = [e["lts_db"] for e in entries if "nearest" in (e.get("lts_db") or {})]
    text = (f"<p>A/B listening: under a note, <em>model</em> plays the library's note, <em>nearest key</em> what a "
            f"sampler holding the training notes plays instead (the same instrument and velocity at the nearest "
            f"other training pitch, resampled: never the note itself), <em>real</em> the dataset's own "
            f"recording of the note; the player and the spectrogram follow. {nearest} of {len(paths)} notes have "
            f"a nearest key, {real} a real note.")
    if both:
        model = float(np.median([d["model"] for d in both]))
        near = float(np.median([d["nearest"] for d in both]))
        text += (f" Median long-term spectrum distance to the real note over the {len(both)} notes with both: "
                 f"the model {model:.1f} dB, the nearest key {near:.1f} dB (a button's tooltip gives its note's).")
    return text + "</p>"


_STYLE = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.5em; margin: 0 0 .3em; } h2 { font-size: 1.2em; margin: 1.5em 0 .2em; }
code { background: #eee; padding: 0 .3em; border-radius: 3px; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ddd; padding: 4px; vertical-align: top; background: #fff; }
thead th { position: sticky; top: 0; background: #f0f0f0; }
th.pitch { text-align: right; font-variant-numeric: tabular-nums; }
td img { display: block; width: 200px; height: 64px; background: #000004; }
td audio { display: block; width: 200px; height: 32px; margin-top: 4px; }
td.none { color: #aaa; text-align: center; vertical-align: middle; }
ul.contents { columns: 3 16em; }
div.ab { display: flex; gap: 2px; margin-top: 2px; width: 200px; }
div.ab button { flex: 1 1 auto; white-space: nowrap; font: 11px system-ui, sans-serif; padding: 1px 2px;
  border: 1px solid #bbb; background: #f4f4f4; border-radius: 3px; cursor: pointer; }
div.ab button[aria-pressed="true"] { background: #333; color: #fff; border-color: #333; }
"""

# One player at a time: starting one pauses the others. An A/B button points its note's player
# and spectrogram at its file and plays it.
_SCRIPT = """
document.addEventListener("play", function (event) {
  document.querySelectorAll("audio").forEach(function (a) { if (a !== event.target) a.pause(); });
}, true);
document.addEventListener("click", function (event) {
  var button = event.target.closest("div.ab button");
  if (!button) return;
  var cell = button.closest("td"), player = cell.querySelector("audio"), picture = cell.querySelector("img");
  cell.querySelectorAll("div.ab button").forEach(function (b) {
    b.setAttribute("aria-pressed", String(b === button));
  });
  if (player.getAttribute("src") !== button.dataset.audio) {
    player.src = button.dataset.audio;
    picture.src = button.dataset.image;
  }
  player.currentTime = 0;
  player.play();
});
"""


def build(maps: Sequence[InstrumentMap], read_pcm: Callable[[str], np.ndarray] | None = None, *,
          formats: Sequence[str] = ("sfz", "dspreset", "sf2"),
          compare: Mapping[str, Mapping[str, Any]] | None = None) -> bytes:
    """The UTF-8 HTML of ``index.html``.

    Args:
        maps: the library's instruments (:func:`.mapping.instrument_maps`).
        read_pcm: unused (the page only links the samples and their PNGs); here for the
            format modules' common signature.
        formats: the sampler formats written beside the page: ``sfz`` and ``dspreset``
            link ``<instrument>.sfz`` / ``.dspreset`` in each instrument's section and
            the contents, ``sf2`` links ``library.sf2``; other names are skipped.
        compare: ``{note path: entry}`` of the notes with a nearest key or a real note beside
            them (:func:`.compare.read_entries`): their cells get A/B buttons (model, nearest
            key, real) that switch the note's player and spectrogram.
    Returns:
        a self-contained page (inline CSS and script, relative links only).
    """
    library_wide, per_format = _sampler_files(maps, formats)
    notes = sum(len(m.zones) for m in maps)
    kinds = sorted({posixpath.splitext(z.path)[1].lstrip(".").upper() for m in maps for z in m.zones})
    seconds = NUM_FRAMES / SAMPLE_RATE
    head = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">', "<title>sing-ray sample library</title>",
        f"<style>{_STYLE}</style>", f"<script>{_SCRIPT}</script>", "</head>", "<body>",
        "<header>", "<h1>sing-ray sample library</h1>",
        f"<p>Notes rendered by sing-ray from a SING neural synthesizer (Défossez et al. 2018): "
        f"{len(maps)} instrument{'s' if len(maps) != 1 else ''}, {notes} note{'s' if notes != 1 else ''} "
        f"({', '.join(kinds) or 'no samples'}, {SAMPLE_RATE // 1000} kHz mono, {seconds:g} s each). "
        f"Each note has a player and a spectrogram (time left to right, {F_MIN:g} Hz to {F_MAX / 1000:g} kHz "
        f"bottom to top, {DB_RANGE:g} dB).</p>",
    ]
    if library_wide or per_format:
        text = "Sampler files beside this page: "
        parts = [f'<a href="{_url(f)}">{html.escape(f)}</a>' for f in library_wide]
        parts += [f"one <code>.{fmt}</code> per instrument" for fmt in per_format]
        head.append(f"<p>{text}{', '.join(parts)}.</p>")
    if compare:
        head.append(_compare_paragraph(maps, compare))
    head.append('<ul class="contents">')
    for i, imap in enumerate(maps):
        links = "".join(f' (<a href="{_url(files[imap.name])}">.{fmt}</a>)' for fmt, files in per_format.items())
        mix = " (mix)" if imap.mix else ""
        head.append(f'<li><a href="#i{i}">{html.escape(imap.name)}</a>{mix}{links}</li>')
    head += ["</ul>", "</header>", "<main>"]
    body = [_section(i, imap, [files[imap.name] for files in per_format.values()], compare)
            for i, imap in enumerate(maps)]
    return "\n".join(head + body + ["</main>", "</body>", "</html>", ""]).encode("utf-8")
