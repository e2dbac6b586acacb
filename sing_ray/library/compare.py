"""Notes to hear the model's against: the nearest-key sampler's and the real ones, beside a library.

``sing-ray render --compare-dataset DIR`` (:func:`write_compare_notes`) writes, for each note of
the library whose (instrument, velocity) the dataset knows:

- ``compare/<instrument>/<note_str>.nearest.<fmt>``: what a sampler holding the training notes
  plays instead of the model: the training split's note of the same instrument and velocity at
  the nearest other pitch (never the note itself), resampled to the note's pitch
  (:func:`sing_ray.evaluate.load_nearest_keys`, :func:`sing_ray.evaluate.shift_nearest_keys`);
- ``compare/<instrument>/<note_str>.real.<fmt>``: the dataset's own recording of that
  (instrument, pitch, velocity), from whichever split holds it;

each with its spectrogram PNG (:func:`.page.note_png`), and ``compare/index.json``, which says
what each library note has (the page's A/B buttons read it, :func:`read_entries`).

None of them is a note of the library: the manifest lists only ``<instrument>/<note>`` files,
every sampler format maps the manifest's rows alone, and the render's scan for notes missing
from the manifest reads back two-level paths only, so no SFZ, Decent Sampler or SoundFont
file ever plays them.
"""
from __future__ import annotations

import json
import logging
import posixpath
from dataclasses import dataclass, field
from typing import Any, Mapping, MutableMapping, Sequence

import numpy as np

from ..data.storage import Location

log = logging.getLogger(__name__)

COMPARE_DIR = "compare"
INDEX = f"{COMPARE_DIR}/index.json"
KINDS = ("nearest", "real")
INDEX_VERSION = 1
# Notes per pass: the real notes, the sources and the shifted ones of a pass are held at once
# (3 x 256 kB a note, about 400 MB for 512 notes).
CHUNK_NOTES = 512


def compare_path(note_path: str, kind: str) -> str:
    """Where a library note's ``kind`` (``nearest`` or ``real``) goes.

    ``guitar_acoustic_000/guitar_acoustic_000-060-127.wav`` ->
    ``compare/guitar_acoustic_000/guitar_acoustic_000-060-127.nearest.wav``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    stem, ext = posixpath.splitext(note_path)
    return f"{COMPARE_DIR}/{stem}.{kind}{ext}"


@dataclass
class CompareSummary:
    """What :func:`write_compare_notes` left in the library.

    Attributes:
        notes: the library notes considered (of the run's sample format).
        nearest, real: how many of them have a nearest key, a real note.
        neither: how many have none of the two; mixes: of those, timbre mixes (never in a dataset).
        written: notes whose compare files this call wrote (the others were there from an earlier run).
        missing_examples: up to three of the notes with neither.
        index: the index's path in the library.
    """

    notes: int = 0
    nearest: int = 0
    real: int = 0
    neither: int = 0
    mixes: int = 0
    written: int = 0
    index: str = INDEX
    missing_examples: list[str] = field(default_factory=list)

    def describe(self) -> str:
        mixes = f" ({self.mixes} of them timbre mixes)" if self.mixes else ""
        return (f"compare notes for {self.notes} library notes: {self.nearest} with the nearest key a sampler "
                f"would stretch, {self.real} with their real note, {self.neither} with neither{mixes}; "
                f"{self.written} written now; index {self.index}")


def _read_index(out: Location) -> dict[str, Any] | None:
    try:
        return json.loads(out.read_bytes(INDEX))
    except (OSError, FileNotFoundError, ValueError):
        return None


def read_entries(out: Location, existing: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """The library notes' compare entries, for the page: ``{note path: entry}``.

    An entry holds ``nearest`` (its file), ``nearest_note`` (the training note stretched),
    ``semitones``, ``real`` (its file), ``real_split``, and ``lts_db`` (``model`` and ``nearest``:
    long-term spectrum distances to the real note, where there is one), each where the note has
    it; the kinds whose files are gone (not in ``existing``, the library's listing) are left out.
    Empty when the library has no index.
    """
    existing = set(out.list_files()) if existing is None else existing
    if INDEX not in existing:
        return {}
    index = _read_index(out) or {}
    entries = {}
    for path, entry in (index.get("notes") or {}).items():
        kept = {k: v for k, v in entry.items() if k not in KINDS or v in existing}
        if not any(k in kept for k in KINDS):
            continue
        if "nearest" not in kept:
            kept = {k: v for k, v in kept.items() if k not in ("nearest_note", "semitones")}
        entries[path] = kept
    return entries


def write_compare_notes(out: Location, rows: Sequence[Mapping[str, Any]], dataset: str, fmt: str) -> CompareSummary:
    """Write the nearest-key and real notes of a library's notes, and the index the page reads.

    A re-run with the same dataset keeps what an earlier run wrote and does only the notes
    it lacks. Needs Ray initialised (the dataset's notes are read with Ray Data).

    Args:
        out: the library (:class:`sing_ray.data.storage.Location`).
        rows: its manifest rows (``path``, ``note_str``, ``instrument``, ``pitch``, ``velocity``, ``mix``).
        dataset: an ingested dataset (the one the model was trained on).
        fmt: the sample format of the library notes compared (``wav`` or ``flac``), and of the files written.
    Returns:
        the :class:`CompareSummary` (also logged).
    """
    from ..evaluate import NEAREST_KEY_SPLIT

    rows = sorted((r for r in rows if r["path"].endswith("." + fmt)), key=lambda r: r["path"])
    previous = _read_index(out) or {}
    same = previous.get("dataset") == str(dataset) and previous.get("version") == INDEX_VERSION
    present = set(out.list_files())
    notes: dict[str, dict[str, Any]] = {}
    none: list[str] = []
    if same:
        old_notes, old_none = previous.get("notes") or {}, set(previous.get("none") or ())
        for r in rows:
            entry = old_notes.get(r["path"])
            if entry is not None and all(entry[k] in present for k in KINDS if k in entry):
                notes[r["path"]] = entry
            elif r["path"] in old_none:
                none.append(r["path"])
    done = set(notes) | set(none)
    todo = [r for r in rows if r["path"] not in done]
    mixes = [r for r in todo if r.get("mix")]
    none += [r["path"] for r in mixes]
    plain = [r for r in todo if not r.get("mix")]
    written = 0
    for start in range(0, len(plain), CHUNK_NOTES):
        chunk = plain[start:start + CHUNK_NOTES]
        found = _compare_chunk(out, chunk, dataset, fmt)
        notes.update(found)
        none += [r["path"] for r in chunk if r["path"] not in found]
        written += len(found)
    index = {"version": INDEX_VERSION, "dataset": str(dataset), "source_split": NEAREST_KEY_SPLIT,
             "notes": dict(sorted(notes.items())), "none": sorted(none)}
    if index != previous:
        out.makedirs(COMPARE_DIR)
        out.write_atomic(json.dumps(index, indent=1).encode(), INDEX)
    summary = CompareSummary(
        notes=len(rows), nearest=sum("nearest" in e for e in notes.values()),
        real=sum("real" in e for e in notes.values()), neither=len(none),
        mixes=sum(1 for r in rows if r.get("mix")), written=written, index=out.display(INDEX),
        missing_examples=sorted(none)[:3])
    log.info("%s", summary.describe())
    if summary.neither:
        log.warning("%d of %d library notes have neither a nearest key nor a real note in %s (e.g. %s): "
                    "their page cells play the model alone", summary.neither, summary.notes, dataset,
                    ", ".join(summary.missing_examples))
    return summary


def _compare_chunk(out: Location, rows: Sequence[Mapping[str, Any]], dataset: str,
                   fmt: str) -> dict[str, dict[str, Any]]:
    """Write the compare files of some plain-instrument notes; returns their entries (notes with any)."""
    from ..evaluate import fetch_held_notes, load_nearest_keys, shift_nearest_keys
    from ..nsynth import NUM_FRAMES
    from ..audio import encode_note, read_pcm16
    from ..timbre import timbre_metrics
    from . import page

    targets = {"note_str": np.array([str(r["note_str"]) for r in rows]),
               "instrument_str": np.array([str(r["instrument"]) for r in rows]),
               "pitch": np.array([int(r["pitch"]) for r in rows]),
               "velocity": np.array([int(r["velocity"]) for r in rows])}
    keys = load_nearest_keys(dataset, targets)
    shifted, semitones = shift_nearest_keys(keys, targets["note_str"], targets["pitch"], NUM_FRAMES)
    held = fetch_held_notes(dataset, targets["note_str"])
    entries: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(rows):
        note, source = str(r["note_str"]), keys.plan.get(str(r["note_str"]))
        entry: MutableMapping[str, Any] = {}
        waves = {}
        if source is not None:
            waves["nearest"] = shifted[i]
            entry.update(nearest_note=source, semitones=int(semitones[i]))
        if note in held:
            split, waves["real"] = held[note]
            entry["real_split"] = split
        if not waves:
            continue
        if "real" in waves:
            model = read_pcm16(out.read_bytes(r["path"])).astype(np.float32) / 32768.0
            against = np.stack([model] + ([waves["nearest"]] if "nearest" in waves else []))
            lts = timbre_metrics(against, np.repeat(waves["real"][None], len(against), 0))["lts_db"]
            entry["lts_db"] = {"model": round(float(lts[0]), 2)}
            if "nearest" in waves:
                entry["lts_db"]["nearest"] = round(float(lts[1]), 2)
        out.makedirs(posixpath.dirname(compare_path(r["path"], "real")))
        for kind, wav in waves.items():
            rel = compare_path(r["path"], kind)
            data, _ = encode_note(wav, fmt)
            out.write_atomic(data, rel)
            out.write_atomic(page.note_png(wav), page.png_path(rel))
            entry[kind] = rel
        entries[r["path"]] = dict(entry)
    return entries
