"""``sing-ray bench render``: render throughput against the raw forward pass, and serve latency.

In one run, for each preset (``small``, ``paper``) and dtype (``float32``, ``bfloat16``):

- the raw model forward pass over the grid (the Generator's fast path, batch by
  batch, no Ray, no files) in processes laid out as the render actors are
  (``--workers`` x ``--threads``), and the plain ``SING.forward`` (its decoder's
  weights laid out anew for every batch) on a batch per process for reference;
- the whole ``render`` job over the same grid (Ray Data actor, model load, WAV
  encoding, files, manifest, SFZ) into a temporary folder;

printed as seconds of audio per second, the ratio render / forward, and the
achieved GFLOP/s of the forward pass (the FLOPs its parts count: LSTM, decoder trunk,
each head) against this machine's GEMM peak (a large matmul timed here in float32
and bfloat16). Then Ray Serve: p50 / p99 latency and
notes per second at 1, 8 and 32 concurrent clients. Untrained weights: speed does
not depend on what a model learnt.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's arguments."""
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--presets", default="small,paper", help="model presets to time")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="precisions to time")
    parser.add_argument("--notes", default="small=2048,paper=512", metavar="PRESET=N,...",
                        help="grid size per preset (a render job's fixed start-up cost needs a long enough job)")
    parser.add_argument("--batch-size", type=int, default=32, metavar="N", help="notes per model call")
    parser.add_argument("--repeats", type=int, default=2, metavar="N",
                        help="forward and render alternate N times; the fastest of each counts")
    parser.add_argument("--reference-batches", type=int, default=1, metavar="N",
                        help="batches per process of the plain SING.forward timed for comparison (0: skip)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="render actors, and forward processes (default: CPUs // --threads)")
    parser.add_argument("--threads", type=int, default=1, metavar="N", help="torch threads per actor / process")
    parser.add_argument("--serve-replicas", type=int, default=None, metavar="N",
                        help="Serve replicas of --threads CPUs each (default: CPUs // --threads)")
    parser.add_argument("--serve-preset", default="paper", help="preset served ('none' skips Serve)")
    parser.add_argument("--serve-dtype", default="bfloat16", help="precision served")
    parser.add_argument("--clients", default="1,8,32", help="concurrent clients, one measurement each")
    parser.add_argument("--requests-per-client", type=int, default=3, metavar="N",
                        help="requests each client sends (at least 16 in all per level)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--num-cpus", type=int, default=None, metavar="N",
                        help="CPUs of the local Ray started (default: all)")


def flops_per_note(path: str | Path) -> float:
    """Floating-point operations of one note rendered by the checkpoint at ``path`` (multiply-add = 2).

    The model's parts count them (:meth:`sing_ray.models.SING.flops_per_note`): the LSTM's
    steps and the decoder's trunk and heads (transposed conv, partials, noise) over the frames
    the render path computes, so that the roofline holds for every preset's model.
    """
    from ..checkpoint import load_model

    model, _ = load_model(path)
    return model.flops_per_note()


def gemm_peak(dtype, size: int = 4096, repeats: int = 3) -> tuple[float, float]:
    """GFLOP/s of a (2 size) x size x size matmul in ``dtype`` on this machine's CPU.

    Returns:
        ``(wall, cpu)``: the best wall-clock figure with all of torch's threads, and one
        thread's figure by CPU time times the number of cores (what the machine gives
        when its cores are not shared with other jobs).
    """
    import torch

    a = torch.randn(2 * size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    flops = 2 * 2 * size ** 3
    a @ b
    wall = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        wall = max(wall, flops / (time.perf_counter() - t) / 1e9)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cpu = 0.0
        for _ in range(repeats):
            t = time.process_time()
            a @ b
            cpu = max(cpu, flops / (time.process_time() - t) / 1e9)
    finally:
        torch.set_num_threads(threads)
    return wall, cpu * (os.cpu_count() or 1)


def _checkpoint(folder: Path, preset: str, num_instruments: int = 8) -> Path:
    import torch

    from ..checkpoint import save_checkpoint
    from ..config import load_config
    from ..models import build_sing

    cfg = load_config(preset)
    torch.manual_seed(0)
    names = [f"keyboard_synthetic_{i:03d}" for i in range(num_instruments)]
    return save_checkpoint(folder / f"{preset}.pt", build_sing(cfg.model, num_instruments), config=cfg,
                           phase="finetune", epoch=0, extra={"instruments": names})


def _grid(count: int, instruments: list[str]) -> tuple[str, str, str]:
    """Instruments, pitches and velocities flags of a grid of about ``count`` notes."""
    velocities = "25,50,75,100,127"
    per_instrument = 88 * 5
    num = max(1, min(len(instruments), -(-count // per_instrument)))
    pitches = max(1, min(88, -(-count // (num * 5))))
    return ",".join(instruments[:num]), f"21:{21 + pitches - 1}", velocities


def _forward_worker(path: str, dtype: str, notes: list, batch_size: int, threads: int, reference_batches: int,
                    barrier, results) -> None:
    """One forward process: warm up, wait for the others, time the fast path, then the plain forward."""
    import torch

    from ..generate import Generator

    torch.set_num_threads(threads)
    batches = [notes[i:i + batch_size] for i in range(0, len(notes), batch_size)]
    fast = Generator.from_checkpoint(path, dtype=getattr(torch, dtype))
    ref = Generator.from_checkpoint(path, dtype=getattr(torch, dtype), fast=False)
    fast.generate(*zip(*batches[0]))              # warm-up: weight casts, allocator, oneDNN kernels
    if reference_batches:
        ref.generate(*zip(*batches[0]))
    out = {}
    barrier.wait()
    out["start"], cpu = time.time(), time.process_time()
    for batch in batches:
        fast.generate(*zip(*batch))
    out["end"], out["cpu_s"], out["notes"] = time.time(), time.process_time() - cpu, len(notes)
    barrier.wait()
    out["ref_start"] = time.time()
    for batch in batches[:reference_batches]:
        ref.generate(*zip(*batch))
    out["ref_end"] = time.time()
    out["ref_notes"] = sum(len(b) for b in batches[:reference_batches])
    results.put(out)


def _time_forward(path: Path, dtype: str, notes: list[tuple[str, int, int]], batch_size: int,
                  reference_batches: int, workers: int, threads: int) -> dict:
    """The raw forward pass over ``notes`` laid out as the render job is: ``workers`` processes of
    ``threads`` threads, each on its share, no Ray, no files. Wall time from the common start."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    shares = [notes[i::workers] for i in range(workers)]
    procs = [ctx.Process(target=_forward_worker, args=(str(path), dtype, share, batch_size, threads,
                                                       reference_batches, barrier, results))
             for share in shares]
    for p in procs:
        p.start()
    outs = [results.get() for _ in procs]
    for p in procs:
        p.join()
    out = {"forward_s": max(o["end"] for o in outs) - min(o["start"] for o in outs), "notes": len(notes),
           # Notes per CPU-second times the cores the processes can use: the speed with those cores
           # to themselves. Other jobs on a shared machine stretch wall time, hardly CPU time.
           "forward_cpu_notes_per_s": sum(o["notes"] for o in outs) / sum(o["cpu_s"] for o in outs)
           * min(os.cpu_count() or 1, workers * threads)}
    if reference_batches:
        out["reference_s"] = max(o["ref_end"] for o in outs) - min(o["ref_start"] for o in outs)
        out["reference_notes"] = sum(o["ref_notes"] for o in outs)
    return out


def _time_render(path: Path, out: Path, dtype: str, flags: tuple[str, str, str], batch_size: int, workers: int,
                 threads: int) -> dict:
    from ..render import plan_render, render_library

    t = time.perf_counter()
    plan = plan_render(path, out, instruments=flags[0], pitches=flags[1], velocities=flags[2])
    planned = time.perf_counter() - t
    summary = render_library(plan, batch_size=batch_size, workers=workers, threads=threads, dtype=dtype,
                             progress_every_s=30)
    return {"render_s": time.perf_counter() - t, "plan_s": planned, "rendered": summary.rendered,
            "first_batch_s": summary.first_batch_s, "steady_audio_per_s": summary.steady_audio_per_second}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _time_serve(path: Path, dtype: str, clients: list[int], per_client: int, replicas: int,
                threads: int) -> list[dict]:
    import numpy as np
    import requests
    from ray import serve

    from ..serve import build_app

    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    url = f"http://127.0.0.1:{port}/synthesize"
    top = max(clients)
    results = []
    try:
        # Each replica batches up to its share of the clients; the bound on queued requests is
        # above the clients' count so that no request of the benchmark is refused.
        batch = max(1, -(-top // replicas))
        serve.run(build_app(str(path), dtype=dtype, num_replicas=replicas, num_cpus=threads, max_batch_size=batch,
                            batch_wait_timeout_s=0.01, max_ongoing_requests=2 * batch,
                            max_queued_requests=4 * top), name="bench", route_prefix="/")
        body = {"instrument": "keyboard_synthetic_000", "pitch": 60, "velocity": 100}
        session = requests.Session()
        for _ in range(2):
            session.post(url, json=body, timeout=600).raise_for_status()
        for count in clients:
            total = max(16, count * per_client)
            latencies: list[float] = []
            lock = threading.Lock()
            jobs = iter(range(total))

            def client(_):
                with requests.Session() as s:
                    while True:
                        with lock:
                            i = next(jobs, None)
                        if i is None:
                            return
                        t = time.perf_counter()
                        r = s.post(url, json={**body, "pitch": 21 + i % 88}, timeout=600)
                        r.raise_for_status()
                        with lock:
                            latencies.append(time.perf_counter() - t)

            t = time.perf_counter()
            with ThreadPoolExecutor(max_workers=count) as pool:
                list(pool.map(client, range(count)))
            wall = time.perf_counter() - t
            lat = np.array(latencies)
            results.append({"clients": count, "requests": total, "p50_s": float(np.percentile(lat, 50)),
                            "p99_s": float(np.percentile(lat, 99)), "notes_per_s": total / wall})
            print(f"  serve {count:>2} client(s): p50 {results[-1]['p50_s']:.2f} s, p99 "
                  f"{results[-1]['p99_s']:.2f} s, {results[-1]['notes_per_s']:.1f} notes/s", flush=True)
    finally:
        serve.shutdown()
    return results


def run(args: argparse.Namespace) -> int:
    """Run every measurement and print the table; returns 0."""
    import ray
    import torch

    from .. import nsynth
    from ..checkpoint import load_checkpoint
    from ..errors import UserError
    from ..render import parse_pitches, parse_velocities
    from ..runtime import init_ray

    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    counts = dict(item.split("=") for item in args.notes.split(",") if "=" in item)
    clients = [int(c) for c in args.clients.split(",") if c.strip()]
    bad = [d for d in dtypes + [args.serve_dtype] if d not in ("float32", "bfloat16")]
    if bad:
        raise UserError(f"--dtypes: {bad[0]!r} is not float32 or bfloat16")
    seconds_per_note = nsynth.NUM_FRAMES / nsynth.SAMPLE_RATE
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPU(s), torch {torch.__version__} with {torch.get_num_threads()} threads, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    print(f"cpu: avx512_bf16={'avx512_bf16' in flags} amx_bf16={'amx_bf16' in flags}", flush=True)
    measured = {d: gemm_peak(getattr(torch, d)) for d in ("float32", "bfloat16")}
    peaks = {d: v[0] for d, v in measured.items()}
    cpu_peaks = {d: v[1] for d, v in measured.items()}
    print("GEMM peak (8192x4096 @ 4096x4096), wall clock: "
          + ", ".join(f"{d} {v:.0f} GFLOP/s" for d, v in peaks.items())
          + "; by CPU time x cores: " + ", ".join(f"{d} {v:.0f}" for d, v in cpu_peaks.items()), flush=True)
    report: dict = {"load_start": load, "gemm_peak_gflops": peaks, "gemm_peak_cpu_gflops": cpu_peaks,
                    "rows": [], "serve": []}
    started = init_ray(num_cpus=args.num_cpus)
    # One process / actor per core, as render's default does (Ray's CPU slots may outnumber cores).
    cpus = min(int(ray.cluster_resources().get("CPU", 1)), os.cpu_count() or 1)
    workers = args.workers or max(1, cpus // args.threads)
    print(f"layout: {workers} process(es) / actor(s) of {args.threads} thread(s), batch {args.batch_size}",
          flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="sing-bench-") as tmp:
            folder = Path(tmp)
            for preset in presets:
                path = _checkpoint(folder, preset)
                ckpt = load_checkpoint(path)
                flops = flops_per_note(path)
                grid = _grid(int(counts.get(preset, 256)), ckpt["extra"]["instruments"])
                del ckpt
                notes = [(i, p, v) for i in grid[0].split(",") for p in parse_pitches(grid[1])
                         for v in parse_velocities(grid[2])]
                print(f"{preset}: {len(notes)} notes, {flops / 1e9:.2f} GFLOP per note, batch {args.batch_size}",
                      flush=True)
                for dtype in dtypes:
                    # Forward and render alternate; the fastest of each counts (on a shared machine
                    # other jobs only ever slow a measurement down).
                    fwd = job = None
                    for rep in range(args.repeats):
                        f = _time_forward(path, dtype, notes, args.batch_size,
                                          args.reference_batches if rep == 0 else 0, workers, args.threads)
                        j = _time_render(path, folder / f"lib-{preset}-{dtype}-{rep}", dtype, grid,
                                         args.batch_size, workers, args.threads)
                        if fwd is None or f["forward_s"] < fwd["forward_s"]:
                            fwd = {**(fwd or {}), **f}
                        if job is None or j["render_s"] < job["render_s"]:
                            job = j
                    audio = len(notes) * seconds_per_note
                    row = {"preset": preset, "dtype": dtype, **fwd, **job,
                           "forward_audio_per_s": audio / fwd["forward_s"],
                           "render_audio_per_s": audio / job["render_s"],
                           "ratio": fwd["forward_s"] / job["render_s"],
                           "gflops": flops * len(notes) / fwd["forward_s"] / 1e9,
                           "load": os.getloadavg()[0]}
                    row["peak_fraction"] = row["gflops"] / peaks[dtype]
                    row["steady_ratio"] = row["steady_audio_per_s"] / row["forward_audio_per_s"]
                    row["forward_cpu_audio_per_s"] = fwd["forward_cpu_notes_per_s"] * seconds_per_note
                    row["cpu_gflops"] = flops * fwd["forward_cpu_notes_per_s"] / 1e9
                    row["cpu_peak_fraction"] = row["cpu_gflops"] / cpu_peaks[dtype]
                    if "reference_s" in fwd:
                        row["reference_audio_per_s"] = fwd["reference_notes"] * seconds_per_note / fwd["reference_s"]
                    report["rows"].append(row)
                    ref = (f" (plain SING.forward {row['reference_audio_per_s']:.1f})"
                           if "reference_audio_per_s" in row else "")
                    print(f"  {preset:5s} {dtype:8s}: forward {row['forward_audio_per_s']:6.1f} s audio/s{ref}; "
                          f"render job {row['render_audio_per_s']:6.1f} s audio/s (after its first batch, at "
                          f"{row['first_batch_s']:.1f} s: {row['steady_audio_per_s']:.1f}); render/forward "
                          f"{row['ratio']:.2f} (steady {row['steady_ratio']:.2f}); {row['gflops']:.0f} GFLOP/s = {100 * row['peak_fraction']:.0f}% "
                          f"of the {dtype} GEMM peak (load {row['load']:.2f}); by CPU time: forward "
                          f"{row['forward_cpu_audio_per_s']:.1f} s audio/s, {row['cpu_gflops']:.0f} GFLOP/s = "
                          f"{100 * row['cpu_peak_fraction']:.0f}% of the peak by CPU time", flush=True)
            if args.serve_preset != "none":
                path = _checkpoint(folder, args.serve_preset)
                print(f"serve: {args.serve_preset} {args.serve_dtype}", flush=True)
                replicas = args.serve_replicas or max(1, cpus // args.threads)
                report["serve"] = _time_serve(path, args.serve_dtype, clients, args.requests_per_client, replicas,
                                              args.threads)
    finally:
        if started:
            ray.shutdown()
    report["load_end"] = os.getloadavg()
    print(f"load average at the end: {report['load_end'][0]:.2f} {report['load_end'][1]:.2f} "
          f"{report['load_end'][2]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0
