"""Planning a render: every input checked, and what the library lacks listed, before any work starts.

No Ray and no model run here: :func:`plan_render` reads the checkpoint's
vocabulary, parses the grid (:mod:`sing_ray.grid`, :mod:`.mix`), probes the
output folder, and reads what is already there (the manifest, and note files an
interrupted run finished but did not list), so a bad flag costs nothing and a
re-run renders only the notes missing.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import posixpath
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .. import nsynth
from ..audio import FORMATS, stats_of_file
from ..data.storage import TMP_MARK, Location, resolve
from ..errors import UserError
from ..grid import parse_pitches, parse_velocities
from .manifest import NOTE_FILE, note_path, read_manifest
from .mix import Mix, parse_mix_arg

log = logging.getLogger(__name__)

DEFAULT_PITCHES = "21:108"        # the 88 keys of a piano


@dataclass
class RenderPlan:
    """What a render will do, fixed before any work starts.

    Attributes:
        out: the library.
        model: the model reference for the manifest; checkpoint: its bytes; digest: their sha256.
        instruments: the plain instruments of the grid; mixes: the mixed ones.
        pitches, velocities: the grid's other axes.
        fmt: ``wav`` or ``flac``.
        formats: the sampler formats to write (``--formats``).
        existing: manifest rows of note files already in the library (valid ones only).
        todo: ``(instrument, pitch, velocity)`` of the notes to render.
        library: the sampler files the last run wrote, ``{relative path: digest}``.
        compare_dataset: the dataset whose nearest keys and real notes go beside the library's
            notes for A/B listening (:mod:`sing_ray.library.compare`); None: none.
        info: ``{instrument: labels}`` (SoundFont, preset, family, source) to merge into the
            library's ``instruments.json`` for the page (:func:`sing_ray.library.mapping.read_instrument_info`).
        share: what ``--share`` kept: ``(fraction, instruments kept, instruments before)``; None without it.
        seconds: how long planning took.
    """

    out: Location
    model: str
    checkpoint: bytes
    digest: str
    instruments: list[str]
    mixes: list[Mix]
    pitches: list[int]
    velocities: list[int]
    fmt: str
    formats: list[str] = field(default_factory=list)
    existing: list[dict] = field(default_factory=list)
    todo: list[tuple[str, int, int]] = field(default_factory=list)
    library: dict[str, str] = field(default_factory=dict)
    compare_dataset: str | None = None
    info: dict[str, dict] = field(default_factory=dict)
    share: tuple[float, int, int] | None = None
    seconds: float = 0.0

    @property
    def grid_instruments(self) -> list[str]:
        return self.instruments + [m.name for m in self.mixes]

    @property
    def total(self) -> int:
        return len(self.grid_instruments) * len(self.pitches) * len(self.velocities)


def probe_output(out: Location) -> None:
    """Create the folder and write then delete a small file: UserError if that fails."""
    name = f".sing-ray-probe-{uuid.uuid4().hex[:12]}"
    try:
        out.makedirs()
        out.write_atomic(b"probe", name)
        out.delete(name)
    except Exception as err:  # pyarrow raises OSError, ArrowException, PermissionError...
        raise UserError(f"--out {out.uri}: cannot write there ({type(err).__name__}: {err})") from None


def plan_render(model: str | os.PathLike, out: str | os.PathLike, *, instruments: str | Sequence[str] | None = None,
                pitches: str | Sequence[int] = DEFAULT_PITCHES, velocities: str | Sequence[int] = "all",
                fmt: str = "wav", mixes: Sequence[str | Mix] = (), tracking_uri: str | None = None,
                formats: str | Sequence[str] | None = None, compare_dataset: str | os.PathLike | None = None,
                share: float | None = None, instrument_info: str | os.PathLike | None = None) -> RenderPlan:
    """Check every input and decide what to render. No Ray, no model run.

    Args:
        model: a checkpoint path or an MLflow model URI.
        out: the library's folder or URI.
        instruments: ``"all"``, ``"NAME,NAME"`` or a list; None: all of the model's
            instruments, or none when ``mixes`` are given (then only the mixes render).
        pitches, velocities: as the CLI's flags, or lists.
        fmt: ``wav`` or ``flac``.
        mixes: ``[NAME=]INSTRUMENT:WEIGHT,...`` strings or :class:`Mix` objects.
        formats: the sampler formats (``sfz,dspreset,sf2``; None: all).
        compare_dataset: an ingested dataset (the model's training data): write its nearest-key
            and real notes beside the library's for A/B listening (:mod:`sing_ray.library.compare`).
        share: render this fraction (0-1] of the plain instruments, spread evenly over their
            order (:func:`share_of`); the mixes always render.
        instrument_info: a JSON file of the instruments' labels (a corpus's instrument metadata,
            an NSynth ``examples.json``...) for the page; the checkpoint's ``extra.instrument_info``
            is used too where it has one.
    Returns:
        the plan; UserError (before any rendering) on an unknown instrument (close matches
        listed) or format, an empty grid, an unreadable model, an output it cannot write,
        a compare dataset that is not a finished dataset, or a library too large for one of
        the formats.
    """
    import difflib

    from ..checkpoint import load_checkpoint
    from ..library import format_module, parse_formats
    from ..library.mapping import read_instrument_info
    from ..tracking import resolve_model

    started = time.perf_counter()
    if share is not None and not (isinstance(share, (int, float)) and 0 < share <= 1):
        raise UserError(f"--share must be a fraction in (0, 1], got {share!r}")
    info: dict[str, dict] = {}
    if instrument_info is not None:
        try:
            info = read_instrument_info(json.loads(Path(instrument_info).read_text()))
        except OSError as err:
            raise UserError(f"--instrument-info {instrument_info}: cannot read it ({err})") from None
        except ValueError as err:
            raise UserError(f"--instrument-info {instrument_info}: {err}") from None
    if fmt not in FORMATS:
        raise UserError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    format_list = parse_formats(formats)
    pitch_list = list(parse_pitches(pitches))
    velocity_list = list(parse_velocities(velocities))
    mix_list = [m if isinstance(m, Mix) else parse_mix_arg(m) for m in mixes]

    reference = str(model)
    path = resolve_model(model, tracking_uri)
    if "://" not in reference and ":/" not in reference:
        reference = str(Path(reference).resolve())
    checkpoint = Path(path).read_bytes()
    ckpt = load_checkpoint(checkpoint)
    if ckpt["class"] != "SING":
        raise UserError(f"{model}: a {ckpt['class']} checkpoint cannot render notes: need a SING "
                        "(finetune phase) checkpoint")
    vocabulary = list(ckpt.get("extra", {}).get("instruments") or [])
    if not vocabulary:
        raise UserError(f"{model}: checkpoint has no instrument vocabulary (extra.instruments)")
    known = set(vocabulary)
    from_checkpoint = ckpt.get("extra", {}).get("instrument_info")
    if from_checkpoint:
        try:
            info = {**read_instrument_info(from_checkpoint), **info}
        except ValueError as err:
            log.warning("%s: extra.instrument_info ignored (%s)", model, err)

    def check(name: str, where: str) -> str:
        if name not in known:
            close = difflib.get_close_matches(name, vocabulary, n=3, cutoff=0.6)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise UserError(f"{where}: unknown instrument {name!r}{hint}")
        return name

    if instruments is None:
        names = [] if mix_list else list(vocabulary)
    elif isinstance(instruments, str) and instruments.strip().lower() == "all":
        names = list(vocabulary)
    else:
        items = instruments.split(",") if isinstance(instruments, str) else list(instruments)
        names = list(dict.fromkeys(check(n.strip(), "--instruments") for n in items if n.strip()))
    shared = None
    if share is not None and names:
        kept = share_of(names, share)
        if not kept:
            raise UserError(f"--share {share:g} of {len(names)} instrument(s) keeps none: give at least "
                            f"{1 / len(names):.3g}")
        shared = (float(share), len(kept), len(names))
        names = kept
    if ckpt["kwargs"].get("instrument_dim", 1) == 0 and mix_list:
        raise UserError("--mix: this model has no instrument table (instrument_dim=0): nothing to mix")
    seen: dict[str, str] = {}
    for m in mix_list:
        for name in m.weights:
            check(name, "--mix")
        if m.name in known:
            raise UserError(f"--mix: the name {m.name!r} is an instrument of the model; pick another")
        if seen.get(m.name, m.spec) != m.spec:
            raise UserError(f"--mix: two different mixes are both named {m.name!r}")
        seen[m.name] = m.spec
    mix_list = list({m.name: m for m in mix_list}.values())
    compare = None
    if compare_dataset is not None:
        from ..data.dataset import load_manifest

        compare = os.fspath(compare_dataset)
        compare = compare if "://" in compare else os.path.abspath(os.path.expanduser(compare))
        try:
            load_manifest(compare)
        except UserError as err:
            raise UserError(f"--compare-dataset: {err}") from None
    plan = RenderPlan(resolve(out, flag="--out"), reference, checkpoint, hashlib.sha256(checkpoint).hexdigest(),
                      names, mix_list, pitch_list, velocity_list, fmt, format_list, compare_dataset=compare,
                      info={k: v for k, v in info.items() if k in known}, share=shared)
    if plan.total == 0:
        axes = {"instruments": len(plan.grid_instruments), "pitches": len(pitch_list),
                "velocities": len(velocity_list)}
        empty = ", ".join(k for k, v in axes.items() if v == 0)
        raise UserError(f"the grid is empty: no {empty} to render")
    probe_output(plan.out)
    _plan_existing(plan)
    # Formats limited per file (a SoundFont) split a large library; an instrument is never split.
    per_instrument: dict[str, int] = {}
    for inst, _, _ in plan.todo:
        per_instrument[inst] = per_instrument.get(inst, 0) + 1
    for r in plan.existing:
        if r["path"].endswith("." + fmt):
            per_instrument[r["instrument"]] = per_instrument.get(r["instrument"], 0) + 1
    for name in format_list:
        check = getattr(format_module(name), "check_size", None)
        if check is not None:
            check(max(per_instrument.values(), default=0), nsynth.NUM_FRAMES)
    plan.seconds = time.perf_counter() - started
    return plan


def share_of(names: Sequence[str], share: float) -> list[str]:
    """``floor(share * len(names))`` of ``names``, spread evenly over their order (the same ones every run).

    Name ``i`` is kept when ``floor((i + 1) * share)`` passes ``floor(i * share)``: a share of
    0.1 keeps the 10th, 20th... A vocabulary sorted by name (family first) keeps every family's share.
    """
    return [n for i, n in enumerate(names) if math.floor((i + 1) * share + 1e-9) > math.floor(i * share + 1e-9)]


def _plan_existing(plan: RenderPlan) -> None:
    """Fill ``plan.existing`` and ``plan.todo`` from the library's files and manifest."""
    out = plan.out
    rows, digest, plan.library = read_manifest(out)
    if digest is not None and digest != plan.digest and rows:
        raise UserError(f"{out.uri} holds notes of another model (checkpoint sha256 {digest[:12]}..., "
                        f"this one {plan.digest[:12]}...): render into another folder")
    files = out.list_files()
    stale = [f for f in files if TMP_MARK in posixpath.basename(f)]
    for rel in stale:
        # Left by an interrupted run: never a note (those only appear complete), so safe to drop.
        log.info("removing %s, left by an interrupted run", out.display(rel))
        out.delete(rel)
    present = {f for f in files if f not in stale}
    listed = {r["path"]: r for r in rows if r["path"] in present}
    mixes = {m.name: m.spec for m in plan.mixes}
    for name, spec in mixes.items():
        other = {r["mix"] for r in listed.values() if r["instrument"] == name and r["mix"] != spec}
        if other:
            raise UserError(f"--mix: {out.uri} already holds an instrument {name!r} made from another mix "
                            f"({sorted(other)[0]}); name this one with NAME=... in --mix")
    orphans = []
    for rel in sorted(present - set(listed)):
        parts = rel.split("/")
        match = NOTE_FILE.match(parts[-1])
        if len(parts) != 2 or not match or match["instrument"] != parts[0]:
            continue
        orphans.append((rel, match))
    if orphans:
        log.info("%d note file(s) from an interrupted run are not in the manifest: reading them back",
                 len(orphans))
    for rel, match in orphans:
        inst = match["instrument"]
        listed[rel] = {"note_str": f"{inst}-{match['pitch']}-{match['velocity']}", "path": rel,
                       "instrument": inst, "pitch": int(match["pitch"]), "velocity": int(match["velocity"]),
                       **stats_of_file(out.read_bytes(rel)), "model": plan.model, "mix": mixes.get(inst, "")}
    plan.existing = list(listed.values())
    done = set(listed)
    plan.todo = [(inst, p, v) for inst in plan.grid_instruments for p in plan.pitches for v in plan.velocities
                 if note_path(inst, p, v, plan.fmt) not in done]

