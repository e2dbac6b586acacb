"""Running a render: the actor pool over the notes a plan lacks, then the manifest and the sampler files.

:func:`render_library` turns the missing notes into rows of a Ray Dataset, maps
them through a pool of :class:`~.actor.NoteSynthesizer` actors, keeps the
manifest close to the files while it runs, and at the end writes the sampler
files and the audition page (:func:`sing_ray.library.writer.write_library_files`).
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import nsynth
from ..data.storage import Location
from ..errors import UserError
from .actor import DTYPES, STAGE_COLUMNS, NoteSynthesizer
from .manifest import MANIFEST, write_manifest
from .plan import RenderPlan

if TYPE_CHECKING:
    from ..library.compare import CompareSummary

log = logging.getLogger(__name__)


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
        stages: ``{stage: (seconds, notes)}`` of plan, synthesis, encoding/writing, sampler files
            and page (:meth:`describe_stages`); actors: how many rendered.
        share: ``(fraction, instruments kept, instruments before)`` of ``--share``.
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
    stages: dict[str, tuple[float, int]] = field(default_factory=dict)
    actors: int = 0
    share: tuple[float, int, int] | None = None

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

    def describe_stages(self) -> str:
        """One line per stage: its seconds, notes and notes per second.

        Plan, sampler files and page run on the driver (wall seconds). Synthesis and
        encoding/writing run in the actors side by side: their seconds are summed over the
        actors (actor-seconds), so notes per actor-second is one actor's speed, and the
        render's wall time (``seconds``) is what they took together.
        """
        lines = []
        parallel = {"synthesis", "encoding/writing"}
        for stage, (seconds, notes) in self.stages.items():
            unit = "actor-s" if stage in parallel else "s"
            rate = f"{notes / seconds:,.1f} notes per {'actor-second' if stage in parallel else 'second'}" \
                if seconds > 0 and notes else "nothing to do"
            lines.append(f"  {stage:<17} {seconds:9.2f} {unit:<8} {notes:>9,} notes  {rate}")
        if self.rendered:
            lines.append(f"  {'render (wall)':<17} {self.seconds:9.2f} s        {self.rendered:>9,} notes  "
                         f"{self.rendered / self.seconds:,.1f} notes per second on {self.actors} actor(s)")
        return "stages:\n" + "\n".join(lines)

    def describe(self) -> str:
        rate = f", {self.audio_per_second:.1f} s of audio per second" if self.rendered else ""
        silent = f"; {self.silent} of them silent" if self.silent else ""
        kinds = ", ".join(f"{len(v)} {k}" for k, v in self.files.items() if k != "page")
        share = (f"--share {self.share[0]:g}: {self.share[1]:,} of {self.share[2]:,} instruments; "
                 if self.share else "")
        return (f"{share}rendered {self.rendered} of {self.total} notes ({self.skipped} already there) in "
                f"{self.seconds:.1f} s{rate}; the library holds {self.notes} notes{silent}; "
                f"sampler files: {kinds or 'none'} ({self.written} written); manifest {self.manifest}")


def storage_env(out: Location) -> dict[str, str]:
    """The driver's object-store settings (``AWS_*`` for S3) that the actors must share.

    A pickled pyarrow S3 file system keeps its endpoint but resolves credentials
    again where it lands; actors started by a Ray that began before these variables
    were set (or on nodes without them) would otherwise write with other, or no,
    credentials.
    """
    if out.fs.type_name != "s3":
        return {}
    return {k: v for k, v in os.environ.items() if k.startswith("AWS_")}


def _write_info(out: Location, info: dict[str, dict]) -> None:
    """Merge the plan's instrument labels into the library's ``instruments.json`` (the page reads it)."""
    from ..library.writer import INFO_FILE, read_info

    merged = read_info(out)
    for name, labels in info.items():
        merged.setdefault(name, {}).update(labels)
    out.write_atomic(json.dumps({"instruments": dict(sorted(merged.items()))}, indent=1).encode(), INFO_FILE)


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

    from ..library.writer import write_library_files

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
    if plan.info:
        _write_info(out, plan.info)
    start = time.perf_counter()
    rendered = 0
    count = 0
    stage_s = dict.fromkeys(STAGE_COLUMNS, 0.0)
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
                for column in STAGE_COLUMNS:
                    stage_s[column] += row.pop(column)
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
        from ..library.compare import write_compare_notes

        compare = write_compare_notes(out, list(rows.values()), plan.compare_dataset, plan.fmt)
    # The sampler files last: the manifest keeps their digests only once all are written.
    files = write_library_files(out, list(rows.values()), plan.formats, plan.fmt, plan.library,
                                on_reshaped=lambda: write_manifest(out, rows.values(), plan.digest, plan.library))
    write_manifest(out, rows.values(), plan.digest, files.digests)
    silent = sum(1 for r in rows.values() if r["peak"] < nsynth.SILENT_PEAK)
    mapped = sum(1 for r in rows.values() if r["path"].endswith("." + plan.fmt))
    sampler = sum(v for k, v in files.seconds.items() if k != "page")       # shaping read-back notes included
    stages = {"plan": (plan.seconds, total), "synthesis": (stage_s["synth_s"], rendered),
              "encoding/writing": (stage_s["write_s"], rendered), "sampler files": (sampler, mapped),
              "page": (files.seconds.get("page", 0.0), mapped)}
    summary = RenderSummary(out.uri, out.display(MANIFEST),
                            {k: [out.display(p) for p in v] for k, v in files.files.items()}, total, skipped,
                            rendered, len(rows), seconds, rendered * nsynth.NUM_FRAMES / nsynth.SAMPLE_RATE,
                            first_batch_s, first_batch_notes, silent, len(files.written), compare, stages,
                            count if todo else 0, plan.share)
    log.info("%s", summary.describe())
    if silent:
        log.warning("%d of %d notes of %s are silent (peak below %.0f dBFS)%s", silent, len(rows), out.uri,
                    20 * math.log10(nsynth.SILENT_PEAK),
                    ": the model outputs silence; see its training run's valid metrics against the "
                    "silence baseline" if silent == len(rows) else "")
    return summary
