"""Ray Serve application: single notes on demand over HTTP.

Routes (relative to the application's route prefix, ``/`` by default):

- ``POST /synthesize``: JSON ``{"instrument": NAME, "pitch": 0-127, "velocity": 25|50|75|100|127,
  "mix": optional "NAME:W,NAME:W" or {"NAME": W}, "morph": optional {"from": NAME, "to": NAME,
  "position": 0-1}, "format": optional "wav"|"flac"}`` -> the note as ``audio/wav`` or
  ``audio/flac`` (16 kHz, 16-bit, 64,000 frames). With ``mix`` or ``morph`` (not both),
  ``instrument`` may be left out; a morph is the mix ``{from: 1 - position, to: position}``
  (:func:`sing_ray.generate.morph_mix`; position 0.5 when not given).
- ``GET /instruments``: the vocabulary, pitches and velocities the model takes.
- ``GET /healthz``: 200 once the model is loaded, with this replica's batch counters.
- ``GET /``: a page to play the model in a browser (``static/``, shipped in the package, no
  external resources): an instrument or a mix of up to three, a velocity, an on-screen and
  computer keyboard; notes come from ``POST /synthesize`` and play with the Web Audio API.

Requests are validated one by one (400 for a body that is not a JSON object, 422
for a field out of range or an unknown instrument, the message naming the field),
then the good ones are batched by ``@serve.batch`` into one model call. Each
replica takes at most ``max_ongoing_requests`` at a time and Serve queues at most
``max_queued_requests`` more; beyond that the proxy answers 503 at once, so an
overload never grows an unbounded queue.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from ray import serve

from .. import nsynth
from ..errors import UserError

log = logging.getLogger(__name__)

FIELDS = ("instrument", "pitch", "velocity", "mix", "morph", "format")
MORPH_FIELDS = ("from", "to", "position")
STATIC = Path(__file__).with_name("static")
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8"}
# The page loads nothing from elsewhere and talks only to the server it came from.
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
               "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
               "frame-ancestors 'none'")
CONTENT_TYPES = {"wav": "audio/wav", "flac": "audio/flac"}


class RequestError(Exception):
    """A request the server refuses: HTTP ``status`` and a message naming the field."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class NoteRequest:
    """One validated request. ``instrument``: a name, or the mix mapping when ``mix`` was given."""

    instrument: str | Mapping[str, float]
    pitch: int
    velocity: int
    fmt: str
    name: str

    @property
    def note_str(self) -> str:
        return nsynth.format_note_str(self.name, self.pitch, self.velocity)


def _integer(data: Mapping, key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise RequestError(422, f"{key}: expected an integer, got {json.dumps(value)}")
    return int(value)


def parse_note_request(body: bytes | str, instruments: Sequence[str]) -> NoteRequest:
    """Validate a ``/synthesize`` body against the model's vocabulary.

    Args:
        body: the raw request body.
        instruments: the model's vocabulary.
    Returns:
        the :class:`NoteRequest`.
    Raises:
        RequestError: 400 when the body is not a JSON object, 422 naming the bad field.
    """
    import difflib

    from ..render import mix_name, mix_spec, parse_mix

    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise RequestError(400, f"body: malformed JSON ({err})") from None
    if not isinstance(data, dict):
        raise RequestError(400, f"body: expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise RequestError(422, f"{unknown[0]}: unknown field; expected {', '.join(FIELDS)}")
    known = set(instruments)

    def check(name: Any, key: str) -> str:
        if not isinstance(name, str):
            raise RequestError(422, f"{key}: expected an instrument name, got {json.dumps(name)}")
        if name not in known:
            close = difflib.get_close_matches(name, list(instruments), n=3, cutoff=0.6)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise RequestError(422, f"{key}: unknown instrument {name!r}{hint}")
        return name

    mix = data.get("mix")
    if mix is not None and data.get("morph") is not None:
        raise RequestError(422, "morph: give mix or morph, not both")
    if data.get("morph") is not None:
        mix = _morph(data["morph"], check)
    if mix is not None:
        if not isinstance(mix, (str, dict)):
            raise RequestError(422, "mix: expected \"NAME:WEIGHT,...\" or {\"NAME\": WEIGHT}")
        try:
            weights = parse_mix(mix)
        except UserError as err:
            raise RequestError(422, str(err)) from None
        for name in weights:
            check(name, "mix")
        instrument: str | dict = weights
        name = mix_name(weights)
        log.debug("mix %s named %s", mix_spec(weights), name)
    else:
        if "instrument" not in data:
            raise RequestError(422, "instrument: required (or give a mix)")
        instrument = name = check(data["instrument"], "instrument")
    for key in ("pitch", "velocity"):
        if key not in data:
            raise RequestError(422, f"{key}: required")
    pitch = _integer(data, "pitch")
    lo, hi = nsynth.PITCH_RANGE
    if not lo <= pitch <= hi:
        raise RequestError(422, f"pitch: {pitch} outside {lo}-{hi}")
    velocity = _integer(data, "velocity")
    if velocity not in nsynth.VELOCITIES:
        raise RequestError(422, f"velocity: {velocity} is not one of {', '.join(map(str, nsynth.VELOCITIES))}")
    fmt = data.get("format", "wav")
    if fmt not in CONTENT_TYPES:
        raise RequestError(422, f"format: {json.dumps(fmt)} is not one of {', '.join(CONTENT_TYPES)}")
    return NoteRequest(instrument, pitch, velocity, fmt, name)


def _morph(morph: Any, check) -> dict[str, float]:
    """A ``morph`` field's mix: ``{from: 1 - position, to: position}``; RequestError naming the bad part."""
    from ..generate import morph_mix

    if not isinstance(morph, dict):
        raise RequestError(422, 'morph: expected {"from": NAME, "to": NAME, "position": 0-1}')
    unknown = sorted(set(morph) - set(MORPH_FIELDS))
    if unknown:
        raise RequestError(422, f"morph.{unknown[0]}: unknown field; expected {', '.join(MORPH_FIELDS)}")
    for key in ("from", "to"):
        if key not in morph:
            raise RequestError(422, f"morph.{key}: required")
        check(morph[key], f"morph.{key}")
    position = morph.get("position", 0.5)
    if isinstance(position, bool) or not isinstance(position, (int, float)) or not 0 <= position <= 1:
        raise RequestError(422, f"morph.position: expected a number from 0 (from) to 1 (to), got "
                                f"{json.dumps(position)}")
    try:
        return morph_mix(morph["from"], morph["to"], position)
    except UserError as err:
        raise RequestError(422, str(err)) from None


@serve.deployment(name="Synthesizer")
class Synthesizer:
    """A replica: one :class:`~sing_ray.generate.Generator`, requests batched into one call.

    Args:
        model: a checkpoint path (reachable from the replica's node) or an MLflow model URI.
        tracking_uri: MLflow tracking URI for ``models:/`` and ``runs:/`` URIs.
        dtype: ``float32`` or ``bfloat16``.
        device: ``cpu`` or ``cuda``.
        num_threads: torch threads (the replica's CPU share).
        max_batch_size, batch_wait_timeout_s: of ``@serve.batch``.
    """

    def __init__(self, model: str, tracking_uri: str | None = None, dtype: str = "float32", device: str = "cpu",
                 num_threads: int = 1, max_batch_size: int = 16, batch_wait_timeout_s: float = 0.005):
        import torch

        from ..generate import Generator
        from ..tracking import resolve_model

        if device == "cpu":
            torch.set_num_threads(max(1, min(int(num_threads), os.cpu_count() or 1)))
        path = resolve_model(model, tracking_uri)
        self.generator = Generator.from_checkpoint(path, device=device, dtype=getattr(torch, dtype))
        self.model = model
        # One thread runs the model so the event loop keeps accepting (and validating)
        # requests while a batch computes; the next batch gathers meanwhile.
        self.executor = ThreadPoolExecutor(max_workers=1)
        self.batches, self.notes, self.largest_batch = 0, 0, 0
        self.generate_batch.set_max_batch_size(max_batch_size)
        self.generate_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)
        log.info("serving %s: %d instruments, %s on %s", model, len(self.generator.instruments), dtype, device)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def generate_batch(self, notes: list[NoteRequest]) -> list[np.ndarray]:
        """Args: validated requests. Returns: one (64000,) float32 waveform each."""
        self.batches += 1
        self.notes += len(notes)
        self.largest_batch = max(self.largest_batch, len(notes))
        loop = asyncio.get_running_loop()
        wavs = await loop.run_in_executor(
            self.executor, self.generator.generate,
            [n.instrument for n in notes], [n.pitch for n in notes], [n.velocity for n in notes])
        return list(wavs)

    async def __call__(self, request):
        from starlette.responses import JSONResponse, Response

        from ..render import encode_note

        path = request.url.path
        root = request.scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root):]
        path = "/" + path.strip("/")
        if request.method == "GET" and (path == "/" or path.startswith("/static/")):
            return static_file(path)
        routes = {"/": "GET", "/synthesize": "POST", "/instruments": "GET", "/healthz": "GET"}
        if path not in routes:
            return JSONResponse({"error": f"path: no route {path}; try {', '.join(routes)}"}, status_code=404)
        if request.method != routes[path]:
            return JSONResponse({"error": f"method: {path} takes {routes[path]}"}, status_code=405)
        if path == "/healthz":
            return JSONResponse({"status": "ok", "model": self.model,
                                 "instruments": len(self.generator.instruments),
                                 "batches": self.batches, "notes": self.notes, "largest_batch": self.largest_batch})
        if path == "/instruments":
            return JSONResponse({"instruments": self.generator.instruments,
                                 "pitches": list(nsynth.PITCH_RANGE), "velocities": list(nsynth.VELOCITIES),
                                 "sample_rate": nsynth.SAMPLE_RATE, "formats": list(CONTENT_TYPES)})
        try:
            note = parse_note_request(await request.body(), self.generator.instruments)
        except RequestError as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)
        wav = await self.generate_batch(note)
        data, stats = await asyncio.to_thread(encode_note, wav, note.fmt)
        return Response(content=data, media_type=CONTENT_TYPES[note.fmt],
                        headers={"X-Note": note.note_str, "X-Peak": f"{stats['peak']:.4f}",
                                 "Content-Disposition": f'inline; filename="{note.note_str}.{note.fmt}"'})


def static_file(path: str):
    """``/`` (the page) or ``/static/NAME``: a file shipped in ``static/``; 404 for anything else."""
    from starlette.responses import JSONResponse, Response

    name = "index.html" if path == "/" else path[len("/static/"):]
    target = STATIC / name
    if "/" in name or name.startswith(".") or target.suffix not in STATIC_TYPES or not target.is_file():
        return JSONResponse({"error": f"path: no static file {name!r}"}, status_code=404)
    return Response(content=target.read_bytes(), media_type=STATIC_TYPES[target.suffix],
                    headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-cache",
                             "X-Content-Type-Options": "nosniff"})


def build_app(model: str, *, tracking_uri: str | None = None, dtype: str = "float32", use_gpu: bool = False,
              num_replicas: int = 1, num_cpus: float | None = None, max_batch_size: int = 16,
              batch_wait_timeout_s: float = 0.005, max_ongoing_requests: int | None = None,
              max_queued_requests: int = 64):
    """The Serve application for MODEL (``serve.run(build_app(...))``).

    Args:
        model: checkpoint path (made absolute) or MLflow model URI; each replica loads it.
        dtype: ``float32`` or ``bfloat16``.
        use_gpu: one GPU per replica.
        num_cpus: CPUs per replica (default: 1 with a GPU, else all of this node's cores).
        max_batch_size, batch_wait_timeout_s: ``@serve.batch`` settings.
        max_ongoing_requests: per replica (default: twice the batch, so one batch gathers
            while another computes).
        max_queued_requests: waiting requests beyond which Serve answers 503.
    Returns:
        a bound :class:`Synthesizer` application.
    """
    from ..render import DTYPES

    if dtype not in DTYPES:
        raise UserError(f"--dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    for name, value in (("--replicas", num_replicas), ("--max-batch-size", max_batch_size),
                        ("--max-queued-requests", max_queued_requests)):
        if value < 1:
            raise UserError(f"{name} must be >= 1, got {value}")
    text = str(model)
    if "://" not in text and ":/" not in text:
        text = os.path.abspath(text)
    cpus = num_cpus if num_cpus is not None else (1 if use_gpu else float(os.cpu_count() or 1))
    ongoing = max_ongoing_requests or 2 * max_batch_size
    return Synthesizer.options(
        num_replicas=num_replicas, max_ongoing_requests=ongoing, max_queued_requests=max_queued_requests,
        ray_actor_options={"num_cpus": cpus, "num_gpus": 1 if use_gpu else 0},
    ).bind(text, tracking_uri=tracking_uri, dtype=dtype, device="cuda" if use_gpu else "cpu",
           num_threads=max(1, int(cpus)), max_batch_size=max_batch_size,
           batch_wait_timeout_s=batch_wait_timeout_s)
