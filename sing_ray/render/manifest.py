"""A library's manifest: ``<out>/manifest.parquet``, one row per note file, and where each note lives.

Its columns are the note's names and levels (``sing_ray.audio.note_stats``), the
model that rendered it, its mix, and what a sampler needs
(:class:`sing_ray.library.notes.NoteShape`). Its Parquet key-value metadata holds
the checkpoint's digest, so a re-run with other weights is refused, and the
sampler files' digests (:mod:`sing_ray.library.writer`), so a re-run rewrites only
those whose notes changed.
"""
from __future__ import annotations

import io
import json
import re
from typing import Iterable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from .. import nsynth
from ..data.storage import Location
from ..errors import UserError

MANIFEST = "manifest.parquet"
# The columns docs/render.md lists, ``mix`` among them: the normalised mix spec of a mixed instrument ("" otherwise).
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
# A note file's name: what a re-run recognises as a note when the manifest does not list it.
NOTE_FILE = re.compile(r"^(?P<instrument>[A-Za-z0-9_.]+)-(?P<pitch>\d{3})-(?P<velocity>\d{3})\.(?P<ext>wav|flac)$")


def note_path(instrument: str, pitch: int, velocity: int, fmt: str) -> str:
    """The note's path inside the library: ``<instrument>/<note_str>.<fmt>``."""
    return f"{instrument}/{nsynth.format_note_str(instrument, pitch, velocity)}.{fmt}"


def read_manifest(out: Location) -> tuple[list[dict], str | None, dict[str, str]]:
    """The manifest's rows, model digest and sampler files' digests; ([], None, {}) when there is none yet."""
    if not out.exists(MANIFEST):
        return [], None, {}
    try:
        table = pq.read_table(io.BytesIO(out.read_bytes(MANIFEST)))
    except Exception as err:
        raise UserError(f"{out.display(MANIFEST)}: not a readable manifest ({err}); move it away to rebuild it")
    meta = table.schema.metadata or {}
    digest = meta.get(MODEL_DIGEST_KEY)
    rows = table.to_pylist()
    for row in rows:
        row.setdefault("mix", "")
    library = json.loads(meta[LIBRARY_KEY]).get("files", {}) if LIBRARY_KEY in meta else {}
    return rows, digest.decode() if digest else None, library


def write_manifest(out: Location, rows: Iterable[Mapping], digest: str,
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
    out.write_atomic(buffer.getvalue(), MANIFEST)

