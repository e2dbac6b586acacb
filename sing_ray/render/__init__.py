"""Rendering sample libraries: an instrument x pitch x velocity grid through SING, with Ray Data.

The driver plans (names checked, output probed, what is already there listed),
then Ray Data turns the missing notes into rows and a ``map_batches`` actor pool,
each actor holding one :class:`~sing_ray.generate.Generator` (one per GPU with
``use_gpu``, CPU actors otherwise), generates a batch, encodes every note to
WAV or FLAC and writes it under ``<out>``. Only small manifest rows travel back
to the driver, which reports progress and writes ``manifest.parquet``. Each actor
also finds its notes' loops and releases and writes a spectrogram PNG beside each
(:mod:`sing_ray.library.notes`); the driver then writes the sampler files and the
audition page (:mod:`sing_ray.library`). Layout (DESIGN.md)::

    <out>/manifest.parquet
    <out>/<instrument_str>/<instrument_str>-<pitch:03d>-<velocity:03d>.wav   (+ .png)
    <out>/<instrument_str>.sfz, <out>/<instrument_str>.dspreset, <out>/library.sf2
    <out>/index.html

``<out>`` is a local path or any URI pyarrow's file systems open (``s3://``,
``gs://``, ``hdfs://``...); S3-compatible endpoints come from the usual
environment (``AWS_ENDPOINT_URL``, credentials) or the URI's query string.

Safe to interrupt: a note appears under its final name only when complete (a
local or HDFS-like file system gets a temporary name then a rename; an object
store gets one PUT, which is atomic). A re-run lists what exists, renders only
the notes missing, and rewrites the manifest so that it lists exactly the note
files of the library; files finished by an interrupted run but not yet in its
manifest are read back and listed, never re-rendered.

Timbre mixes (``--mix``) are new instruments: a weighted mix of instrument
embeddings, named by :func:`mix_name` (or by the user) and recorded in the
manifest's ``mix`` column.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import mimetypes
import os
import posixpath
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from . import nsynth
from .errors import UserError

if TYPE_CHECKING:
    from .library.compare import CompareSummary

log = logging.getLogger(__name__)

MANIFEST = "manifest.parquet"
# DESIGN.md's columns, then ``mix``: the normalised mix spec of a mixed instrument ("" otherwise).
MANIFEST_SCHEMA = pa.schema([
    ("note_str", pa.string()), ("path", pa.string()), ("instrument", pa.string()),
    ("pitch", pa.int16()), ("velocity", pa.int16()), ("seconds", pa.float32()),
    ("peak", pa.float32()), ("rms", pa.float32()), ("sha256", pa.string()), ("model", pa.string()),
    ("mix", pa.string()),
    # What a sampler needs (sing_ray.library.notes.NoteShape).
    ("sustain", pa.bool_()), ("f0", pa.float32()), ("loop_start", pa.int32()), ("loop_end", pa.int32()),
    ("loop_crossfade", pa.float32()), ("loop_join", pa.float32()), ("release", pa.float32()),
])
# Parquet key-value metadata: the checkpoint's digest, so a re-run with other weights is refused.
MODEL_DIGEST_KEY = b"sing_ray.model_sha256"
# Parquet key-value metadata: the sampler files written and their digests (sing_ray.library.writer).
LIBRARY_KEY = b"sing_ray.library"

FORMATS = {"wav": ("WAV", "audio/wav"), "flac": ("FLAC", "audio/flac")}
DTYPES = ("float32", "bfloat16")
DEFAULT_PITCHES = "21:108"        # the 88 keys of a piano
TMP_MARK = ".tmp-"
_NOTE_FILE = re.compile(r"^(?P<instrument>[A-Za-z0-9_.]+)-(?P<pitch>\d{3})-(?P<velocity>\d{3})\.(?P<ext>wav|flac)$")
_NSYNTH_INSTRUMENT = re.compile(r"^(?P<family>[a-z_]+)_(?:acoustic|electronic|synthetic)_\d{3}$")
_MIX_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


# ----------------------------------------------------------------------------------------------
# Parsing the grid


def parse_pitches(text: str) -> list[int]:
    """``"21:108"``, ``"21:108:12"`` (inclusive bounds) or ``"60,64,67"``, or a mix of both.

    Returns:
        the sorted distinct MIDI pitches; UserError naming the flag on bad input.
    """
    pitches: set[int] = set()
    for item in (s.strip() for s in str(text).split(",")):
        if not item:
            continue
        try:
            parts = [int(p) for p in item.split(":")]
        except ValueError:
            raise UserError(f"--pitches: {item!r} is not N or LO:HI[:STEP] of integers") from None
        if len(parts) == 1:
            pitches.add(parts[0])
        elif len(parts) in (2, 3):
            lo, hi, step = parts[0], parts[1], parts[2] if len(parts) == 3 else 1
            if step < 1:
                raise UserError(f"--pitches: step must be >= 1 in {item!r}")
            pitches.update(range(lo, hi + 1, step))
        else:
            raise UserError(f"--pitches: {item!r} is not N or LO:HI[:STEP]")
    bad = sorted(p for p in pitches if not nsynth.PITCH_RANGE[0] <= p <= nsynth.PITCH_RANGE[1])
    if bad:
        raise UserError(f"--pitches: {bad[0]} outside the MIDI range "
                        f"{nsynth.PITCH_RANGE[0]}-{nsynth.PITCH_RANGE[1]}")
    return sorted(pitches)


def parse_velocities(text: str) -> list[int]:
    """``"all"`` or a comma list of NSynth velocities (25, 50, 75, 100, 127). Returns them sorted."""
    if str(text).strip().lower() == "all":
        return list(nsynth.VELOCITIES)
    out: set[int] = set()
    for item in (s.strip() for s in str(text).split(",")):
        if not item:
            continue
        try:
            v = int(item)
        except ValueError:
            raise UserError(f"--velocities: {item!r} is not an integer") from None
        if v not in nsynth.VELOCITIES:
            raise UserError(f"--velocities: {v} is not one of the model's velocities "
                            f"{', '.join(map(str, nsynth.VELOCITIES))}")
        out.add(v)
    return sorted(out)


def parse_mix(text: str | Mapping[str, float]) -> dict[str, float]:
    """``"guitar_acoustic_010:0.7,flute_acoustic_002:0.3"`` (or a mapping) -> normalised weights.

    Returns:
        ``{instrument: weight}`` with weights summing to 1, in the order given.
    Raises:
        UserError on a malformed spec, a negative weight or a zero sum.
    """
    if isinstance(text, Mapping):
        items = list(text.items())
    else:
        items = []
        for part in (s.strip() for s in str(text).split(",")):
            if not part:
                continue
            name, sep, weight = part.rpartition(":")
            if not sep or not name.strip():
                raise UserError(f"mix: {part!r} is not INSTRUMENT:WEIGHT")
            items.append((name.strip(), weight))
    if not items:
        raise UserError("mix: no INSTRUMENT:WEIGHT entries")
    weights: dict[str, float] = {}
    for name, weight in items:
        try:
            w = float(weight)
        except (TypeError, ValueError):
            raise UserError(f"mix: weight {weight!r} of {name!r} is not a number") from None
        if not math.isfinite(w) or w < 0:
            raise UserError(f"mix: weight of {name!r} must be a finite number >= 0, got {weight!r}")
        weights[str(name)] = weights.get(str(name), 0.0) + w
    total = sum(weights.values())
    if total <= 0:
        raise UserError("mix: the weights sum to 0")
    return {k: v / total for k, v in weights.items()}


def mix_spec(mix: Mapping[str, float]) -> str:
    """The canonical text of a normalised mix: heaviest first, weights to 4 decimals."""
    ordered = sorted(mix.items(), key=lambda kv: (-round(kv[1], 4), kv[0]))
    return ",".join(f"{name}:{weight:.4f}".rstrip("0").rstrip(".") for name, weight in ordered if weight > 0)


def mix_name(mix: Mapping[str, float]) -> str:
    """An NSynth-like name for a timbre mix: ``<families>_mix_synthetic_<NNN>``.

    ``<families>`` are the NSynth families of the components, heaviest first, without
    repeats (a name that is not NSynth's ``<family>_<source>_<NNN>`` counts as its own
    family); ``mix`` keeps the name out of NSynth's vocabulary; ``synthetic`` is the
    source, as a mix was never recorded; ``<NNN>`` is a hash of :func:`mix_spec`, so
    the same mix always gets the same name. ``0.7 guitar_acoustic_010 + 0.3
    flute_acoustic_002`` -> ``guitar_flute_mix_synthetic_NNN``. The result parses with
    :func:`sing_ray.nsynth.parse_note_str` once a pitch and velocity are appended.
    """
    spec = mix_spec(mix)
    families: list[str] = []
    for part in spec.split(","):
        name = part.rpartition(":")[0]
        match = _NSYNTH_INSTRUMENT.match(name)
        family = match["family"] if match else (re.sub(r"[^a-z]+", "_", name.lower()).strip("_") or "x")
        if family not in families:
            families.append(family)
    number = int.from_bytes(hashlib.blake2b(spec.encode(), digest_size=4).digest(), "big") % 1000
    return f"{'_'.join(families)}_mix_synthetic_{number:03d}"


@dataclass(frozen=True)
class Mix:
    """A timbre mix rendered as a new instrument.

    Attributes:
        name: the instrument name it gets in paths, the manifest and the SFZ.
        weights: normalised ``{instrument: weight}``.
    """

    name: str
    weights: dict[str, float]

    @property
    def spec(self) -> str:
        return mix_spec(self.weights)


def parse_mix_arg(text: str) -> Mix:
    """``[NAME=]INSTRUMENT:WEIGHT,...``: a :class:`Mix`, named by :func:`mix_name` unless NAME is given."""
    name, sep, rest = str(text).partition("=")
    if not sep:
        name, rest = "", text
    weights = parse_mix(rest)
    name = name.strip()
    if name and not _MIX_NAME.match(name):
        raise UserError(f"--mix: name {name!r} must be lower-case letters, digits and '_' "
                        "(it becomes a folder and file names)")
    return Mix(name or mix_name(weights), weights)


def note_path(instrument: str, pitch: int, velocity: int, fmt: str) -> str:
    """The note's path inside the library: ``<instrument>/<note_str>.<fmt>``."""
    return f"{instrument}/{nsynth.format_note_str(instrument, pitch, velocity)}.{fmt}"


# ----------------------------------------------------------------------------------------------
# Output file systems


@dataclass(frozen=True)
class Output:
    """The library's folder on some file system (picklable: it travels to the actors).

    Attributes:
        fs: a pyarrow file system.
        root: the folder inside ``fs`` (no trailing slash).
        uri: what the user gave, for messages.
    """

    fs: pafs.FileSystem
    root: str
    uri: str

    @property
    def atomic_put(self) -> bool:
        """Object stores publish an object only when its upload completes: no rename needed."""
        return self.fs.type_name in ("s3", "gcs")

    def path(self, rel: str) -> str:
        return posixpath.join(self.root, rel) if self.root else rel

    def display(self, rel: str = "") -> str:
        return posixpath.join(self.uri.rstrip("/"), rel) if rel else self.uri

    def makedirs(self, rel: str) -> None:
        """Create a sub-folder where folders exist (object stores have none)."""
        if not self.atomic_put:
            self.fs.create_dir(self.path(rel), recursive=True)

    def write(self, rel: str, data: bytes) -> None:
        """Write ``data`` so that ``rel`` appears only complete (temporary name + rename, or one PUT)."""
        final = self.path(rel)
        if self.atomic_put:
            # With its media type, so that a browser plays the library's page straight from the store.
            kind = mimetypes.guess_type(rel)[0]
            stream = self.fs.open_output_stream(final, metadata={"Content-Type": kind} if kind else None)
            stream.write(data)
            stream.close()
            return
        head, name = posixpath.split(final)
        tmp = posixpath.join(head, f".{name}{TMP_MARK}{uuid.uuid4().hex[:12]}")
        try:
            with self.fs.open_output_stream(tmp) as stream:
                stream.write(data)
            self.fs.move(tmp, final)
        except BaseException:
            try:
                self.fs.delete_file(tmp)
            except OSError:
                pass
            raise

    def read(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.path(rel)) as stream:
            return stream.read()

    def list_files(self) -> list[str]:
        """Every file under the root, as paths relative to it."""
        selector = pafs.FileSelector(self.root, recursive=True, allow_not_found=True)
        prefix = self.root.rstrip("/") + "/" if self.root else ""
        return sorted(i.path[len(prefix):] for i in self.fs.get_file_info(selector)
                      if i.type == pafs.FileType.File and i.path.startswith(prefix))


def resolve_output(uri: str | os.PathLike) -> Output:
    """An :class:`Output` for a local path (made absolute) or a file-system URI.

    Raises:
        UserError when no file system opens the URI.
    """
    text = os.fspath(uri)
    if "://" not in text:
        path = os.path.abspath(os.path.expanduser(text)).replace(os.sep, "/")
        return Output(pafs.LocalFileSystem(), path, path)
    try:
        fs, path = pafs.FileSystem.from_uri(text)
    except (pa.ArrowException, ValueError, OSError) as err:
        raise UserError(f"--out {text}: no file system opens it ({err})") from None
    return Output(fs, path.rstrip("/"), text.split("?", 1)[0].rstrip("/"))


def probe_output(out: Output) -> None:
    """Create the folder and write then delete a small file: UserError if that fails."""
    name = f".sing-ray-probe-{uuid.uuid4().hex[:12]}"
    try:
        out.makedirs("")
        out.write(name, b"probe")
        out.fs.delete_file(out.path(name))
    except Exception as err:  # pyarrow raises OSError, ArrowException, PermissionError...
        raise UserError(f"--out {out.uri}: cannot write there ({type(err).__name__}: {err})") from None


# ----------------------------------------------------------------------------------------------
# Encoding one note


def encode_note(wav: np.ndarray, fmt: str) -> tuple[bytes, dict]:
    """16-bit WAV or FLAC bytes of one note, with its level statistics.

    Args:
        wav: (T,) float waveform in [-1, 1] (clipped beyond).
        fmt: ``wav`` or ``flac``.
    Returns:
        ``(data, stats)``; stats: seconds, peak and rms of what was written (after
        16-bit quantisation), sha256 of ``data``.
    """
    from .dsp import float_to_pcm16

    pcm = float_to_pcm16(wav)
    data = encode_pcm16(pcm, fmt)
    return data, _stats(pcm, data)


def encode_pcm16(pcm: np.ndarray, fmt: str, comment: str = "") -> bytes:
    """The bytes of a 16-bit WAV or FLAC file of ``pcm`` (int16) at 16 kHz, with ``comment`` if given."""
    import soundfile as sf

    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", nsynth.SAMPLE_RATE, 1, format=FORMATS[fmt][0], subtype="PCM_16") as f:
        if comment:
            f.comment = comment
        f.write(pcm)
    return buffer.getvalue()


def _stats(pcm: np.ndarray, data: bytes) -> dict:
    from .dsp import INT16_SCALE

    x = pcm.astype(np.float32) / INT16_SCALE
    return {
        "seconds": float(len(pcm) / nsynth.SAMPLE_RATE),
        "peak": float(np.abs(x).max()) if len(x) else 0.0,
        "rms": float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0,
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def stats_of_file(data: bytes) -> dict:
    """The manifest statistics of a note file already written (a re-run's orphans)."""
    import soundfile as sf

    pcm, _ = sf.read(io.BytesIO(data), dtype="int16", always_2d=False)
    return _stats(np.asarray(pcm), data)


# ----------------------------------------------------------------------------------------------
# The actor


class NoteSynthesizer:
    """Ray Data actor: generates a batch of notes and writes each one under the library.

    Args:
        checkpoint: checkpoint bytes, or an ObjectRef to them (one copy per node via the object store).
        out: where the files go.
        fmt: ``wav`` or ``flac``.
        model: the model reference written to the manifest.
        dtype: ``float32`` or ``bfloat16``.
        device: ``cpu`` or ``cuda``.
        num_threads: torch threads on CPU (the actor's CPU share).
        mixes: ``{instrument name: mix weights}`` of the mixed instruments.
        io_threads: parallel encodes and writes per batch (object-store PUTs are latency-bound).
    """

    def __init__(self, checkpoint, out: Output, fmt: str, model: str, dtype: str = "float32",
                 device: str = "cpu", num_threads: int = 1, mixes: Mapping[str, Mapping[str, float]] | None = None,
                 io_threads: int = 8):
        import ray
        import torch

        from .generate import Generator

        if device == "cpu":
            # Ray's share of CPUs, but never more threads than the node has cores.
            torch.set_num_threads(max(1, min(int(num_threads), os.cpu_count() or 1)))
        data = ray.get(checkpoint) if isinstance(checkpoint, ray.ObjectRef) else checkpoint
        self.generator = Generator.from_checkpoint(bytes(data), device=device, dtype=getattr(torch, dtype))
        self.out, self.fmt, self.model = out, fmt, model
        self.mixes = {k: dict(v) for k, v in (mixes or {}).items()}
        self.pool = ThreadPoolExecutor(max_workers=io_threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Args: batch with ``instrument``, ``pitch``, ``velocity``. Returns: manifest columns."""
        instruments = [str(i) for i in batch["instrument"]]
        pitches = [int(p) for p in batch["pitch"]]
        velocities = [int(v) for v in batch["velocity"]]
        rows = [self.mixes.get(name, name) for name in instruments]
        wavs = self.generator.generate(rows, pitches, velocities)

        def write(i: int) -> dict:
            from .library import notes, page

            rel = note_path(instruments[i], pitches[i], velocities[i], self.fmt)
            data, pcm, shape = notes.encode(wavs[i], pitches[i], self.fmt)
            # The picture first: a note is complete (and never rendered again) once its audio exists.
            self.out.write(page.png_path(rel), page.note_png(pcm))
            self.out.write(rel, data)
            mix = self.mixes.get(instruments[i])
            return {"note_str": nsynth.format_note_str(instruments[i], pitches[i], velocities[i]),
                    "path": rel, "instrument": instruments[i], "pitch": pitches[i],
                    "velocity": velocities[i], **_stats(pcm, data), "model": self.model,
                    "mix": mix_spec(mix) if mix else "", **shape.row()}

        written = list(self.pool.map(write, range(len(instruments))))
        return {name: np.array([r[name] for r in written]) for name in MANIFEST_SCHEMA.names}


# ----------------------------------------------------------------------------------------------
# Planning and running a render


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
    """

    out: Output
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

    @property
    def grid_instruments(self) -> list[str]:
        return self.instruments + [m.name for m in self.mixes]

    @property
    def total(self) -> int:
        return len(self.grid_instruments) * len(self.pitches) * len(self.velocities)


@dataclass
class RenderSummary:
    """The outcome of :func:`render_library`.

    Attributes:
        out: the library's URI or path; manifest: the manifest's.
        files: ``{format: [URIs]}`` of the library's sampler files and page (``page``: index.html);
            written: how many of them this run (re)wrote.
        total: notes in the grid; skipped: already there; rendered: written by this run.
        notes: rows in the manifest (the whole library, earlier grids included).
        seconds: wall time of the rendering stage; audio_seconds: audio it wrote.
        first_batch_s, first_batch_notes: when the first batch came back (actor start,
            model load and one batch) and its size, to tell start-up from steady speed.
        compare: what ``--compare-dataset`` put beside the notes (a
            :class:`~sing_ray.library.compare.CompareSummary`), None without it.
    """

    out: str
    manifest: str
    files: dict[str, list[str]]
    total: int
    skipped: int
    rendered: int
    notes: int
    seconds: float
    audio_seconds: float
    first_batch_s: float = 0.0
    first_batch_notes: int = 0
    silent: int = 0
    written: int = 0
    compare: "CompareSummary | None" = None

    @property
    def sfz(self) -> list[str]:
        return self.files.get("sfz", [])

    @property
    def audio_per_second(self) -> float:
        return self.audio_seconds / self.seconds if self.seconds > 0 else 0.0

    @property
    def steady_audio_per_second(self) -> float:
        """Seconds of audio per second after the first batch: the speed start-up costs do not blur."""
        rest = self.seconds - self.first_batch_s
        notes = self.rendered - self.first_batch_notes
        return notes * nsynth.NUM_FRAMES / nsynth.SAMPLE_RATE / rest if rest > 0 and notes > 0 else 0.0

    def describe(self) -> str:
        rate = f", {self.audio_per_second:.1f} s of audio per second" if self.rendered else ""
        silent = f"; {self.silent} of them silent" if self.silent else ""
        kinds = ", ".join(f"{len(v)} {k}" for k, v in self.files.items() if k != "page")
        return (f"rendered {self.rendered} of {self.total} notes ({self.skipped} already there) in "
                f"{self.seconds:.1f} s{rate}; the library holds {self.notes} notes{silent}; "
                f"sampler files: {kinds or 'none'} ({self.written} written); manifest {self.manifest}")


def _read_manifest(out: Output) -> tuple[list[dict], str | None, dict[str, str]]:
    """The manifest's rows, model digest and sampler files' digests; ([], None, {}) when there is none yet."""
    path = out.path(MANIFEST)
    if out.fs.get_file_info(path).type == pafs.FileType.NotFound:
        return [], None, {}
    try:
        table = pq.read_table(io.BytesIO(out.read(MANIFEST)))
    except Exception as err:
        raise UserError(f"{out.display(MANIFEST)}: not a readable manifest ({err}); move it away to rebuild it")
    meta = table.schema.metadata or {}
    digest = meta.get(MODEL_DIGEST_KEY)
    rows = table.to_pylist()
    for row in rows:
        row.setdefault("mix", "")
    library = json.loads(meta[LIBRARY_KEY]).get("files", {}) if LIBRARY_KEY in meta else {}
    return rows, digest.decode() if digest else None, library


def write_manifest(out: Output, rows: Iterable[Mapping], digest: str,
                   library: Mapping[str, str] | None = None) -> None:
    """Write ``manifest.parquet`` atomically, rows sorted by path; ``library``: the sampler files' digests."""
    ordered = sorted(rows, key=lambda r: r["path"])
    table = pa.Table.from_pylist([{k: r.get(k) for k in MANIFEST_SCHEMA.names} for r in ordered],
                                 schema=MANIFEST_SCHEMA)
    meta = {MODEL_DIGEST_KEY: digest.encode()}
    if library is not None:
        meta[LIBRARY_KEY] = json.dumps({"files": dict(sorted(library.items()))}).encode()
    table = table.replace_schema_metadata(meta)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    out.write(MANIFEST, buffer.getvalue())


def plan_render(model: str | os.PathLike, out: str | os.PathLike, *, instruments: str | Sequence[str] | None = None,
                pitches: str | Sequence[int] = DEFAULT_PITCHES, velocities: str | Sequence[int] = "all",
                fmt: str = "wav", mixes: Sequence[str | Mix] = (), tracking_uri: str | None = None,
                formats: str | Sequence[str] | None = None, compare_dataset: str | os.PathLike | None = None
                ) -> RenderPlan:
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
    Returns:
        the plan; UserError (before any rendering) on an unknown instrument (close matches
        listed) or format, an empty grid, an unreadable model, an output it cannot write,
        a compare dataset that is not a finished dataset, or a library too large for one of
        the formats.
    """
    import difflib

    from .checkpoint import load_checkpoint
    from .tracking import resolve_model

    from .library import format_module, parse_formats

    if fmt not in FORMATS:
        raise UserError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    format_list = parse_formats(formats)
    pitch_list = parse_pitches(pitches) if isinstance(pitches, str) else parse_pitches(
        ",".join(str(int(p)) for p in pitches))
    velocity_list = parse_velocities(velocities) if isinstance(velocities, str) else parse_velocities(
        ",".join(str(int(v)) for v in velocities))
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
        from .data.dataset import load_manifest

        compare = os.fspath(compare_dataset)
        compare = compare if "://" in compare else os.path.abspath(os.path.expanduser(compare))
        try:
            load_manifest(compare)
        except UserError as err:
            raise UserError(f"--compare-dataset: {err}") from None
    plan = RenderPlan(resolve_output(out), reference, checkpoint, hashlib.sha256(checkpoint).hexdigest(),
                      names, mix_list, pitch_list, velocity_list, fmt, format_list, compare_dataset=compare)
    if plan.total == 0:
        axes = {"instruments": len(plan.grid_instruments), "pitches": len(pitch_list),
                "velocities": len(velocity_list)}
        empty = ", ".join(k for k, v in axes.items() if v == 0)
        raise UserError(f"the grid is empty: no {empty} to render")
    probe_output(plan.out)
    _plan_existing(plan)
    notes = len(plan.todo) + sum(1 for r in plan.existing if r["path"].endswith("." + fmt))
    for name in format_list:
        check = getattr(format_module(name), "check_size", None)
        if check is not None:
            check(notes, nsynth.NUM_FRAMES)
    return plan


def _plan_existing(plan: RenderPlan) -> None:
    """Fill ``plan.existing`` and ``plan.todo`` from the library's files and manifest."""
    out = plan.out
    rows, digest, plan.library = _read_manifest(out)
    if digest is not None and digest != plan.digest and rows:
        raise UserError(f"{out.uri} holds notes of another model (checkpoint sha256 {digest[:12]}..., "
                        f"this one {plan.digest[:12]}...): render into another folder")
    files = out.list_files()
    stale = [f for f in files if TMP_MARK in posixpath.basename(f)]
    for rel in stale:
        # Left by an interrupted run: never a note (those only appear complete), so safe to drop.
        log.info("removing %s, left by an interrupted run", out.display(rel))
        out.fs.delete_file(out.path(rel))
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
        match = _NOTE_FILE.match(parts[-1])
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
                       **stats_of_file(out.read(rel)), "model": plan.model, "mix": mixes.get(inst, "")}
    plan.existing = list(listed.values())
    done = set(listed)
    plan.todo = [(inst, p, v) for inst in plan.grid_instruments for p in plan.pitches for v in plan.velocities
                 if note_path(inst, p, v, plan.fmt) not in done]


def storage_env(out: Output) -> dict[str, str]:
    """The driver's object-store settings (``AWS_*`` for S3) that the actors must share.

    A pickled pyarrow S3 file system keeps its endpoint but resolves credentials
    again where it lands; actors started by a Ray that began before these variables
    were set (or on nodes without them) would otherwise write with other, or no,
    credentials.
    """
    if out.fs.type_name != "s3":
        return {}
    return {k: v for k, v in os.environ.items() if k.startswith("AWS_")}


def _worker_resources(use_gpu: bool, workers: int | None, threads: int = 1) -> tuple[int, dict]:
    """Actor count and per-actor Ray resources.

    GPU: one actor per GPU. CPU: by default one single-threaded actor per CPU of
    the cluster. Many single-threaded actors beat fewer multi-threaded ones for
    batch rendering: each GEMM runs at one core's full speed with no OpenMP
    barriers, and a core taken by another process slows one actor instead of
    stalling every thread of a team at each barrier (measured on this project's
    2-core machine under load: 18 against under 8 s of audio per second, paper
    preset, bfloat16). Each actor holds one copy of the model.
    """
    import ray

    resources = ray.cluster_resources()
    if use_gpu:
        gpus = int(resources.get("GPU", 0))
        if gpus < 1 and not workers:
            # An autoscaling cluster may have none yet: with --workers the actors wait for them.
            raise UserError("--gpu: the Ray cluster has no GPU now; give --workers N to wait for N GPU actors "
                            "(an autoscaling cluster starts GPU workers on demand)")
        count = workers or gpus
        return count, {"num_gpus": 1, "num_cpus": 1, "threads": 1, "device": "cuda"}
    if threads < 1:
        raise UserError(f"--threads must be >= 1, got {threads}")
    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= 1]
    here = ray.get_runtime_context().get_node_id()

    def cores(node: dict) -> int:
        # Ray's CPUs are scheduling slots; a local Ray may have more slots than cores
        # (sing_ray.runtime gives it at least 4), and an actor per slot would only
        # time-share the cores with one more model copy each.
        slots = int(node["Resources"]["CPU"])
        return min(slots, os.cpu_count() or slots) if node.get("NodeID") == here else slots

    per_node = min(cores(n) for n in nodes) if nodes else 1
    threads = min(threads, per_node)
    count = workers or max(1, sum(cores(n) // threads for n in nodes))
    return count, {"num_gpus": 0, "num_cpus": threads, "threads": threads, "device": "cpu"}


def render_library(plan: RenderPlan, *, batch_size: int = 32, workers: int | None = None, use_gpu: bool = False,
                   dtype: str = "float32", threads: int = 1, progress_every_s: float = 5.0,
                   manifest_every_s: float = 60.0) -> RenderSummary:
    """Render what ``plan`` lacks with Ray Data, then write the manifest and the SFZ files.

    Needs Ray initialised. Logs progress (notes rendered / total, seconds of audio
    per second) every ``progress_every_s`` and rewrites the manifest every
    ``manifest_every_s`` so that an interruption leaves it close to the files.

    Args:
        plan: from :func:`plan_render`.
        batch_size: notes per model call.
        workers: actors (default: one per GPU with ``use_gpu``, else one per ``threads`` CPUs).
        threads: torch threads (and Ray CPUs) per CPU actor.
        dtype: ``float32`` or ``bfloat16``.
    Returns:
        the :class:`RenderSummary`.
    """
    import ray

    from .library.writer import write_library_files

    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if dtype not in DTYPES:
        raise UserError(f"--dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    out = plan.out
    rows = {r["path"]: r for r in plan.existing}
    todo = plan.todo
    total = plan.total
    skipped = total - len(todo)
    log.info("%s: %d notes in the grid, %d already there, %d to render", out.uri, total, skipped, len(todo))
    start = time.perf_counter()
    rendered = 0
    first_batch_s, first_batch_notes = 0.0, 0
    if todo:
        for inst in sorted({t[0] for t in todo}):
            out.makedirs(inst)
        count, res = _worker_resources(use_gpu, workers, threads)
        # No more actors than batches: an actor that would get no work only costs a model load.
        count = min(count, math.ceil(len(todo) / batch_size))
        log.info("rendering with %d %s actor(s) of %d thread(s), batch %d, %s", count, res["device"],
                 res["threads"], batch_size, dtype)
        items = [{"instrument": i, "pitch": p, "velocity": v} for i, p, v in todo]
        blocks = max(count, min(len(items), math.ceil(len(items) / batch_size)))
        env = storage_env(out)
        # One copy in the object store, fetched by each actor (on any node), not one per actor.
        checkpoint = ray.put(plan.checkpoint)
        ds = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            NoteSynthesizer, batch_size=batch_size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=count), num_cpus=res["num_cpus"], num_gpus=res["num_gpus"],
            runtime_env={"env_vars": env} if env else None,
            fn_constructor_kwargs=dict(
                checkpoint=checkpoint, out=out, fmt=plan.fmt, model=plan.model, dtype=dtype,
                device=res["device"], num_threads=res["threads"],
                mixes={m.name: m.weights for m in plan.mixes}))
        last_log = last_manifest = time.perf_counter()
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            for row in batch.to_pylist():
                rows[row["path"]] = row
            rendered += batch.num_rows
            now = time.perf_counter()
            if not first_batch_notes:
                first_batch_s, first_batch_notes = now - start, batch.num_rows
            if now - last_log >= progress_every_s or rendered == len(todo):
                elapsed = now - start
                rate = rendered * nsynth.NUM_FRAMES / nsynth.SAMPLE_RATE / elapsed
                eta = (len(todo) - rendered) * elapsed / rendered
                log.info("rendered %d/%d notes (%.0f%%), %.1f s of audio per second, %.0f s left",
                         skipped + rendered, total, 100 * (skipped + rendered) / total, rate, eta)
                last_log = now
            if now - last_manifest >= manifest_every_s:
                write_manifest(out, rows.values(), plan.digest)
                last_manifest = now
    seconds = time.perf_counter() - start
    write_manifest(out, rows.values(), plan.digest, plan.library)
    compare = None
    if plan.compare_dataset is not None:
        from .library.compare import write_compare_notes

        compare = write_compare_notes(out, list(rows.values()), plan.compare_dataset, plan.fmt)
    # The sampler files last: the manifest keeps their digests only once all are written.
    files = write_library_files(out, list(rows.values()), plan.formats, plan.fmt, plan.library,
                                on_reshaped=lambda: write_manifest(out, rows.values(), plan.digest, plan.library))
    write_manifest(out, rows.values(), plan.digest, files.digests)
    silent = sum(1 for r in rows.values() if r["peak"] < nsynth.SILENT_PEAK)
    summary = RenderSummary(out.uri, out.display(MANIFEST),
                            {k: [out.display(p) for p in v] for k, v in files.files.items()}, total, skipped,
                            rendered, len(rows), seconds, rendered * nsynth.NUM_FRAMES / nsynth.SAMPLE_RATE,
                            first_batch_s, first_batch_notes, silent, len(files.written), compare)
    log.info("%s", summary.describe())
    if silent:
        log.warning("%d of %d notes of %s are silent (peak below %.0f dBFS)%s", silent, len(rows), out.uri,
                    20 * math.log10(nsynth.SILENT_PEAK),
                    ": the model outputs silence; see its training run's valid metrics against the "
                    "silence baseline" if silent == len(rows) else "")
    return summary
