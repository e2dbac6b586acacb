"""Rendering sample libraries: an instrument x pitch x velocity grid through SING, with Ray Data.

The driver plans (names checked, output probed, what is already there listed),
then Ray Data turns the missing notes into rows and a ``map_batches`` actor pool,
each actor holding one :class:`~sing_ray.generate.Generator` (one per GPU with
``use_gpu``, CPU actors otherwise), generates a batch, encodes every note to
WAV or FLAC and writes it under ``<out>``. Only small manifest rows travel back
to the driver, which reports progress and writes ``manifest.parquet``. Each actor
also finds its notes' loops and releases and writes a spectrogram PNG beside each
(:mod:`sing_ray.library.notes`); the driver then writes the sampler files and the
audition page (:mod:`sing_ray.library`). Layout (docs/render.md)::

    <out>/manifest.parquet
    <out>/<instrument_str>/<instrument_str>-<pitch:03d>-<velocity:03d>.wav   (+ .png)
    <out>/<instrument_str>.sfz, <out>/<instrument_str>.dspreset
    <out>/library.sf2 (past one SoundFont's limits: <out>/library-<family>[-<k>].sf2)
    <out>/index.html, <out>/instruments.json (the instruments' labels, with --instrument-info)

``<out>`` is a local path or any URI pyarrow's file systems open (``s3://``,
``gs://``, ``hdfs://``...), a :class:`sing_ray.data.storage.Location`; S3-compatible
endpoints come from the usual environment (``AWS_ENDPOINT_URL``, credentials) or
the URI's query string.

Safe to interrupt: a note appears under its final name only when complete (a
local or HDFS-like file system gets a temporary name then a rename; an object
store gets one PUT, which is atomic). A re-run lists what exists, renders only
the notes missing, and rewrites the manifest so that it lists exactly the note
files of the library; files finished by an interrupted run but not yet in its
manifest are read back and listed, never re-rendered.

``--share F`` renders an even share of the instruments (:func:`.plan.share_of`), and
the summary gives each stage's notes per second (:meth:`RenderSummary.describe_stages`).

Timbre mixes (``--mix``) are new instruments: a weighted mix of instrument
embeddings, named by :func:`mix_name` (or by the user) and recorded in the
manifest's ``mix`` column.

The package, along those seams:

- :mod:`.mix`: parsing and naming timbre mixes (the pitch and velocity axes are
  parsed by :mod:`sing_ray.grid`, shared with ``sing-ray data soundfont``);
- :mod:`.manifest`: ``manifest.parquet`` and the notes' paths;
- :mod:`.plan`: :func:`plan_render`, every input checked before any work;
- :mod:`.actor`: the Ray Data actor that generates, encodes and writes notes
  (encoding and statistics: :mod:`sing_ray.audio`);
- :mod:`.job`: :func:`render_library`, the actor pool, then the sampler files.

The names below are this package's public interface (the CLI, Serve, the MLflow
model, the quick start and the benches import them from here).
"""
from __future__ import annotations

from ..audio import FORMATS, encode_note, encode_pcm16, stats_of_file
from ..data.storage import TMP_MARK, Location
from ..grid import parse_pitches, parse_velocities
from .actor import DTYPES, NoteSynthesizer
from .job import RenderSummary, render_library, storage_env
from .manifest import LIBRARY_KEY, MANIFEST, MANIFEST_SCHEMA, MODEL_DIGEST_KEY, note_path, read_manifest, write_manifest
from .mix import Mix, mix_name, mix_spec, parse_mix, parse_mix_arg
from .plan import DEFAULT_PITCHES, RenderPlan, plan_render, probe_output

__all__ = [
    "DEFAULT_PITCHES", "DTYPES", "FORMATS", "LIBRARY_KEY", "MANIFEST", "MANIFEST_SCHEMA", "MODEL_DIGEST_KEY",
    "TMP_MARK", "Location", "Mix", "NoteSynthesizer", "RenderPlan", "RenderSummary", "encode_note",
    "encode_pcm16", "mix_name", "mix_spec", "note_path", "parse_mix", "parse_mix_arg", "parse_pitches",
    "parse_velocities", "plan_render", "probe_output", "read_manifest", "render_library", "stats_of_file",
    "storage_env", "write_manifest",
]
