"""Writing a library's sampler files and audition page from its manifest, incrementally.

:func:`write_library_files` maps every instrument of the library (:mod:`.mapping`),
then writes each format's files and ``index.html``. Each file's digest covers
everything it is built from (its zones: samples' sha256, keys, velocities, loops,
releases; the format's version); the manifest keeps the digests, and a re-run
rewrites a file only when its digest changed or the file is gone.

Notes written before loops existed (or read back after an interruption) get their
shape here: a WAV's ``smpl`` chunk gives its loop back; a note without one is
analysed, crossfaded and written again with it (:func:`shape_note`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, MutableMapping, Sequence

import numpy as np

from ..audio import note_stats, read_pcm16
from ..data.storage import Location
from . import format_module, notes
from .mapping import instrument_maps, read_instrument_info

log = logging.getLogger(__name__)

# Bump when a module's output changes for the same zones, so libraries get rewritten.
FILE_VERSION = 1
# The instruments' labels (SoundFont, preset, family, source) the page shows, where the corpus
# gives them: written by ``render --instrument-info``, read back by every later run.
INFO_FILE = "instruments.json"
# Samples kept while the files are built (about 128 kB each at 4 s).
CACHE_NOTES = 512


def read_info(out: Location) -> dict[str, dict]:
    """The library's ``instruments.json`` (:func:`.mapping.read_instrument_info`); {} without one."""
    if not out.exists(INFO_FILE):
        return {}
    try:
        return read_instrument_info(json.loads(out.read_bytes(INFO_FILE)))
    except ValueError as err:
        log.warning("%s: ignored (%s)", out.display(INFO_FILE), err)
        return {}


@dataclass
class LibraryFiles:
    """What :func:`write_library_files` did.

    Attributes:
        files: ``{format: [relative paths]}`` of every file the library now has, ``page`` included.
        written: the relative paths (re)written by this call; the rest were up to date.
        digests: ``{relative path: digest}`` to keep in the manifest.
        pngs: spectrogram PNGs written for notes that had none.
        reshaped: notes given a loop and release here (older libraries, interrupted runs).
        seconds: ``{format: seconds}`` spent building and writing each format's files (``page``:
            index.html and the spectrograms it lacked; ``shape``: giving notes their loop and release).
    """

    files: dict[str, list[str]] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)
    pngs: int = 0
    reshaped: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def shape_note(out: Location, row: MutableMapping) -> bool:
    """Give a manifest row without loop columns its shape, from its file. Returns whether the file was rewritten.

    A note written by this version (a WAV with a ``smpl`` chunk, a FLAC with its loop
    comment) keeps its loop and gets its file's statistics; any other note is analysed
    and written again, crossfaded, with its loop.
    """
    data = out.read_bytes(row["path"])
    pitch = int(row["pitch"])
    fmt = row["path"].rsplit(".", 1)[-1]
    pcm = read_pcm16(data)
    x = pcm.astype(np.float32) / 32768.0
    if fmt == "wav":
        smpl = notes.read_smpl(data)
        loop = None if smpl is None else (smpl["loops"][0] if smpl["loops"] else (-1, -1))
    else:
        loop = notes.read_flac_loop(data)
    if loop is not None:
        # Written by this version (crossfade baked in): keep its loop, never crossfade twice.
        env = notes.envelope_db(x)
        start, end = loop
        f0 = notes.estimate_f0(x[start: end + 1].astype(np.float64), pitch) if start >= 0 else 0.0
        shape = notes.NoteShape(start >= 0, f0, start, end, 0.0, 0.0, notes.release_seconds(env))
        row.update(shape.row())
        row.update(note_stats(pcm, data))
        return False
    data, pcm, shape = notes.encode(x, pitch, fmt)
    out.write_atomic(data, row["path"])
    row.update(shape.row())
    row.update(note_stats(pcm, data))
    return True


def _digest(name: str, maps, extra: Mapping | None = None) -> str:
    payload = {"format": name, "version": FILE_VERSION, "extra": dict(extra or {}),
               "maps": [{"name": m.name, "mix": m.mix, "zones": [z.__dict__ for z in m.zones]} for m in maps]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def write_library_files(out: Location, rows: Sequence[MutableMapping], formats: Sequence[str], fmt: str,
                        previous: Mapping[str, str] | None = None, page: bool = True,
                        on_reshaped: Callable[[], None] | None = None) -> LibraryFiles:
    """Write the library's sampler files (and ``index.html``) for the notes of ``fmt``.

    Args:
        out: the library (:class:`sing_ray.data.storage.Location`).
        rows: its manifest rows; rows without loop columns are shaped (and updated) in place.
        formats: ``--formats`` names (see :data:`sing_ray.library.FORMAT_MODULES`).
        fmt: the sample format mapped (``wav`` or ``flac``): a library may hold both.
        previous: ``{relative path: digest}`` from the manifest of the last run.
        page: also write ``index.html`` and any missing spectrogram PNG.
        on_reshaped: called once notes were given their shape (and files rewritten), before
            any sampler file is built: where the caller saves the manifest, so that an
            interruption cannot leave rows that disagree with their files.
    Returns:
        the :class:`LibraryFiles`.
    """
    from . import compare as compare_module
    from . import page as page_module

    result = LibraryFiles()
    previous = dict(previous or {})
    started = time.perf_counter()
    for row in rows:
        if row.get("release") is None and row["path"].endswith("." + fmt):
            result.reshaped += 1
            shape_note(out, row)
    if result.reshaped:
        result.seconds["shape"] = time.perf_counter() - started
        log.info("gave %d note(s) their loop and release", result.reshaped)
        if on_reshaped is not None:
            on_reshaped()
    maps = instrument_maps(rows, fmt=fmt)
    existing = set(out.list_files())
    cache: dict[str, np.ndarray] = {}

    def read_pcm(path: str) -> np.ndarray:
        if path not in cache:
            if len(cache) >= CACHE_NOTES:           # a SoundFont reads thousands of samples, once each
                cache.clear()
            cache[path] = read_pcm16(out.read_bytes(path))
        return cache[path]

    modules = [(name, format_module(name), {}) for name in formats]
    if page:
        options: dict = {"formats": list(formats)}
        # The nearest-key and real notes beside the library's (render --compare-dataset): the
        # page's A/B buttons. Only the page reads them; no sampler format sees them.
        compare = compare_module.read_entries(out, existing)
        if compare:
            options["compare"] = compare
        info = read_info(out)
        if info:
            options["info"] = info
        modules.append((page_module.NAME, page_module, options))
    for name, module, options in modules:
        started = time.perf_counter()
        result.files[name] = []
        for rel, group in module.files(maps).items():
            digest = _digest(name, group, options)
            result.files[name].append(rel)
            result.digests[rel] = digest
            if previous.get(rel) == digest and rel in existing:
                continue
            out.write_atomic(module.build(group, read_pcm, **options), rel)
            result.written.append(rel)
        result.seconds[name] = time.perf_counter() - started
    if page:
        started = time.perf_counter()
        for m in maps:
            for z in m.zones:
                png = page_module.png_path(z.path)
                if png not in existing:
                    out.write_atomic(page_module.note_png(read_pcm(z.path)), png)
                    result.pngs += 1
        result.seconds[page_module.NAME] += time.perf_counter() - started
    log.info("library files: %s (%d written, %d up to date)",
             ", ".join(f"{len(v)} {k}" for k, v in result.files.items()), len(result.written),
             sum(len(v) for v in result.files.values()) - len(result.written))
    return result
