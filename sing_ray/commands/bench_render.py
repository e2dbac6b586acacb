"""``sing-ray bench render``: render throughput against the raw forward pass, and serve latency.

In one run, for each preset (``small``, ``paper``), and a trained checkpoint if given, and
for each dtype (``float32``, ``bfloat16``):

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

With ``--device cuda`` (or ``--gpu``) the same on the GPU: the forward pass in this process
(the waveforms copied back to the host, as the render actors and Serve do), the render job's
actors and Serve's replicas one per GPU, the GEMM peak the GPU's; and before each model's
timings, how far the GPU's notes are from the CPU's (:func:`agreement`: the plain forward
and the fast path, float32 and bfloat16, against the CPU's float32). A machine without CUDA
is refused before Ray starts, naming the torch build found.
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

# sing_ray.train.bench's DEVICES, named here so that --help imports no torch.
DEVICES = ("cpu", "cuda")
# The four notes the GPU's output is compared on with the CPU's: (pitches, velocities).
AGREEMENT_NOTES = ((40, 60, 72, 84), (25, 50, 100, 127))


def default_batch_size(device: str, preset: str) -> int:
    """Notes per model call when --batch-size is not given: 32 on the CPU; on CUDA 256, 64 for
    ``paper`` (the batches docs/render.md's GPU figures were measured at)."""
    if device == "cpu":
        return 32
    return 64 if preset == "paper" else 256


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's arguments."""
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--presets", default="small,paper", help="model presets to time")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="precisions to time")
    parser.add_argument("--checkpoint", default=None, metavar="FILE",
                        help="a trained SING (finetune) checkpoint to time too, after the presets (--presets '' "
                             "for it alone); its grid size is --notes checkpoint=N")
    parser.add_argument("--notes", default="small=2048,paper=512", metavar="PRESET=N,...",
                        help="grid size per preset, 256 for one not named (a render job's fixed start-up cost "
                             "needs a long enough job)")
    parser.add_argument("--device", choices=DEVICES, default=None,
                        help="where the forward pass, the render job and Serve run (default: cpu); cuda needs "
                             "a GPU that torch sees here, and also compares its notes with the CPU's")
    parser.add_argument("--gpu", action="store_true", help="the same as --device cuda")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help="notes per model call (default: 32 on the CPU; on CUDA 64 for paper, 256 for "
                             "the others)")
    parser.add_argument("--repeats", type=int, default=2, metavar="N",
                        help="forward and render alternate N times; the fastest of each counts")
    parser.add_argument("--reference-batches", type=int, default=1, metavar="N",
                        help="batches per process of the plain SING.forward timed for comparison (0: skip)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="render actors, and forward processes (default: CPUs // --threads; on CUDA one "
                             "actor per GPU, the forward pass in this process)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="torch threads per actor / process (on CUDA: one)")
    parser.add_argument("--serve-replicas", type=int, default=None, metavar="N",
                        help="Serve replicas of --threads CPUs each (default: CPUs // --threads; on CUDA one "
                             "per GPU)")
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


def cuda_gemm_peak(dtype, size: int = 8192, repeats: int = 10) -> float:
    """GFLOP/s of a (2 size) x size x size matmul in ``dtype`` on the CUDA device (best of ``repeats``).

    float32 is strict float32 (PyTorch's default for matmuls: no TensorFloat-32).
    """
    import torch

    a = torch.randn(2 * size, size, device="cuda").to(dtype)
    b = torch.randn(size, size, device="cuda").to(dtype)
    flops = 2 * 2 * size ** 3
    a @ b
    torch.cuda.synchronize()
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        torch.cuda.synchronize()
        best = max(best, flops / (time.perf_counter() - t) / 1e9)
    del a, b
    torch.cuda.empty_cache()
    return best


def relative_error(a, b) -> float:
    """||a - b|| / ||b|| in float32."""
    import torch

    a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def agreement(path: str | Path, device: str = "cuda") -> dict[str, float]:
    """How far ``device``'s notes are from the CPU's, for the SING checkpoint at ``path``.

    Four notes (:data:`AGREEMENT_NOTES`, of the vocabulary's first instruments) rendered by the
    CPU's plain ``SING.forward`` in float32, the reference, and on ``device`` by the plain
    forward and by the Generator's fast path (what ``render`` and Serve run), in float32 and
    in bfloat16.

    Returns:
        ``reference_rms`` (the reference's RMS) and, for each of ``forward float32``, ``fast
        float32``, ``forward bfloat16`` and ``fast bfloat16``, the relative error
        (:func:`relative_error`) against the reference.
    """
    import torch

    from ..generate import Generator

    cpu = Generator.from_checkpoint(path, fast=False)
    pitches, velocities = AGREEMENT_NOTES
    rows = (cpu.instruments * len(pitches))[:len(pitches)], list(pitches), list(velocities)
    reference = cpu.generate(*rows)
    del cpu
    out = {"reference_rms": float((reference ** 2).mean() ** 0.5)}
    for dtype in ("float32", "bfloat16"):
        for fast in (False, True):
            gen = Generator.from_checkpoint(path, device=device, dtype=getattr(torch, dtype), fast=fast)
            out[f"{'fast' if fast else 'forward'} {dtype}"] = relative_error(gen.generate(*rows), reference)
            del gen
    _release(device)
    return out


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _release(device: str) -> None:
    """Give the memory of the models dropped back to the GPU, for the render actors and Serve's replicas."""
    if device == "cuda":
        import gc

        import torch

        gc.collect()
        torch.cuda.empty_cache()


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


def time_forward_here(path: str | Path, dtype: str, notes: list[tuple[str, int, int]], batch_size: int,
                      reference_batches: int, device: str) -> dict:
    """The raw forward pass over ``notes`` in this process on ``device`` (on CUDA: one GPU).

    The Generator's fast path batch by batch after a warm-up batch, each batch's waveforms
    copied back to the host as the render actors and Serve do, then the plain
    ``SING.forward`` on ``reference_batches`` batches. Returns the keys of
    :func:`_time_forward` but its CPU-time figure (``forward_s``, ``notes``, and with
    ``reference_batches`` ``reference_s`` and ``reference_notes``).
    """
    import torch

    from ..generate import Generator

    batches = [notes[i:i + batch_size] for i in range(0, len(notes), batch_size)]
    out: dict = {"notes": len(notes)}
    for key, fast, count in (("forward", True, len(batches)), ("reference", False, reference_batches)):
        if not count:
            continue
        gen = Generator.from_checkpoint(path, device=device, dtype=getattr(torch, dtype), fast=fast)
        gen.generate(*zip(*batches[0]))           # warm-up: weight casts, allocator, kernels
        _sync(device)
        t = time.perf_counter()
        for batch in batches[:count]:
            gen.generate(*zip(*batch))
        _sync(device)
        out[f"{key}_s"] = time.perf_counter() - t
        del gen
    if reference_batches:
        out["reference_notes"] = sum(len(b) for b in batches[:reference_batches])
    _release(device)
    return out


def _time_render(path: Path, out: Path, dtype: str, flags: tuple[str, str, str], batch_size: int,
                 workers: int | None, threads: int, use_gpu: bool = False) -> dict:
    from ..render import plan_render, render_library

    t = time.perf_counter()
    plan = plan_render(path, out, instruments=flags[0], pitches=flags[1], velocities=flags[2])
    planned = time.perf_counter() - t
    summary = render_library(plan, batch_size=batch_size, workers=workers, threads=threads, dtype=dtype,
                             use_gpu=use_gpu, progress_every_s=30)
    return {"render_s": time.perf_counter() - t, "plan_s": planned, "rendered": summary.rendered,
            "first_batch_s": summary.first_batch_s, "steady_audio_per_s": summary.steady_audio_per_second}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _time_serve(path: Path, dtype: str, clients: list[int], per_client: int, replicas: int,
                threads: int, use_gpu: bool = False) -> list[dict]:
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
        serve.run(build_app(str(path), dtype=dtype, use_gpu=use_gpu, num_replicas=replicas,
                            num_cpus=None if use_gpu else threads, max_batch_size=batch,
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


def _row(label: str, dtype: str, fwd: dict, job: dict, flops: float, peaks: dict, cpu_peaks: dict | None,
         agree: dict | None) -> dict:
    """One preset x dtype of the table: the forward pass's and the render job's figures side by side."""
    from .. import nsynth

    seconds_per_note = nsynth.NUM_FRAMES / nsynth.SAMPLE_RATE
    audio = fwd["notes"] * seconds_per_note
    row = {"preset": label, "dtype": dtype, **fwd, **job,
           "forward_audio_per_s": audio / fwd["forward_s"],
           "render_audio_per_s": audio / job["render_s"],
           "ratio": fwd["forward_s"] / job["render_s"],
           "gflops": flops * fwd["notes"] / fwd["forward_s"] / 1e9,
           "load": os.getloadavg()[0]}
    row["peak_fraction"] = row["gflops"] / peaks[dtype]
    row["steady_ratio"] = row["steady_audio_per_s"] / row["forward_audio_per_s"]
    if cpu_peaks:
        row["forward_cpu_audio_per_s"] = fwd["forward_cpu_notes_per_s"] * seconds_per_note
        row["cpu_gflops"] = flops * fwd["forward_cpu_notes_per_s"] / 1e9
        row["cpu_peak_fraction"] = row["cpu_gflops"] / cpu_peaks[dtype]
    if "reference_s" in fwd:
        row["reference_audio_per_s"] = fwd["reference_notes"] * seconds_per_note / fwd["reference_s"]
    if agree:
        row["forward_notes_per_s"] = fwd["notes"] / fwd["forward_s"]
        row["error_vs_cpu"] = agree[f"fast {dtype}"]
        row["forward_error_vs_cpu"] = agree[f"forward {dtype}"]
    return row


def _describe(row: dict) -> str:
    """The printed line of one row."""
    ref = f" (plain SING.forward {row['reference_audio_per_s']:.1f})" if "reference_audio_per_s" in row else ""
    text = (f"  {row['preset']:5s} {row['dtype']:8s}: forward {row['forward_audio_per_s']:6.1f} s audio/s{ref}; "
            f"render job {row['render_audio_per_s']:6.1f} s audio/s (after its first batch, at "
            f"{row['first_batch_s']:.1f} s: {row['steady_audio_per_s']:.1f}); render/forward "
            f"{row['ratio']:.2f} (steady {row['steady_ratio']:.2f}); {row['gflops']:.0f} GFLOP/s = "
            f"{100 * row['peak_fraction']:.0f}% of the {row['dtype']} GEMM peak (load {row['load']:.2f})")
    if "cpu_gflops" in row:
        text += (f"; by CPU time: forward {row['forward_cpu_audio_per_s']:.1f} s audio/s, {row['cpu_gflops']:.0f} "
                 f"GFLOP/s = {100 * row['cpu_peak_fraction']:.0f}% of the peak by CPU time")
    if "error_vs_cpu" in row:
        text += (f"; forward {row['forward_notes_per_s']:,.0f} notes/s; against the CPU: fast path "
                 f"{row['error_vs_cpu']:.1e}, plain forward {row['forward_error_vs_cpu']:.1e}")
    return text


def run(args: argparse.Namespace) -> int:
    """Run every measurement and print the table; returns 0."""
    import torch

    from ..checkpoint import load_checkpoint
    from ..errors import UserError
    from ..render import parse_pitches, parse_velocities
    from ..runtime import init_ray
    from ..train.bench import check_device

    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    counts = dict(item.split("=") for item in args.notes.split(",") if "=" in item)
    clients = [int(c) for c in args.clients.split(",") if c.strip()]
    bad = [d for d in dtypes + [args.serve_dtype] if d not in ("float32", "bfloat16")]
    if bad:
        raise UserError(f"--dtypes: {bad[0]!r} is not float32 or bfloat16")
    if args.gpu and args.device not in (None, "cuda"):
        raise UserError(f"--gpu asks for --device cuda, not --device {args.device}")
    # Checked before Ray starts: a machine without the GPU asked for says so at once.
    device = check_device(args.device or ("cuda" if args.gpu else "cpu"))
    cuda = device == "cuda"
    if args.checkpoint:
        ckpt = load_checkpoint(args.checkpoint)
        if ckpt["class"] != "SING":
            raise UserError(f"--checkpoint {args.checkpoint}: a checkpoint of class {ckpt['class']}; need a SING "
                            "(finetune phase) checkpoint")
        if not ckpt.get("extra", {}).get("instruments"):
            raise UserError(f"--checkpoint {args.checkpoint}: no instrument vocabulary (extra.instruments)")
        del ckpt
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPU(s), torch {torch.__version__} with {torch.get_num_threads()} threads, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    report: dict
    if cuda:
        gpu = torch.cuda.get_device_name()
        print(f"gpu: {gpu} ({torch.cuda.device_count()} visible), CUDA {torch.version.cuda}", flush=True)
        peaks, cpu_peaks = {d: cuda_gemm_peak(getattr(torch, d)) for d in ("float32", "bfloat16")}, None
        print("GEMM peak on the GPU (16384x8192 @ 8192x8192): "
              + ", ".join(f"{d} {v:,.0f} GFLOP/s" for d, v in peaks.items()), flush=True)
        report = {"device": device, "gpu": gpu, "load_start": load, "gemm_peak_gflops": peaks, "agreement": {},
                  "rows": [], "serve": []}
    else:
        flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
        print(f"cpu: avx512_bf16={'avx512_bf16' in flags} amx_bf16={'amx_bf16' in flags}", flush=True)
        measured = {d: gemm_peak(getattr(torch, d)) for d in ("float32", "bfloat16")}
        peaks = {d: v[0] for d, v in measured.items()}
        cpu_peaks = {d: v[1] for d, v in measured.items()}
        print("GEMM peak (8192x4096 @ 4096x4096), wall clock: "
              + ", ".join(f"{d} {v:.0f} GFLOP/s" for d, v in peaks.items())
              + "; by CPU time x cores: " + ", ".join(f"{d} {v:.0f}" for d, v in cpu_peaks.items()), flush=True)
        report = {"device": device, "load_start": load, "gemm_peak_gflops": peaks, "gemm_peak_cpu_gflops": cpu_peaks,
                  "rows": [], "serve": []}
    started = init_ray(num_cpus=args.num_cpus)
    import ray

    # One process / actor per core, as render's default does (Ray's CPU slots may outnumber cores).
    cpus = min(int(ray.cluster_resources().get("CPU", 1)), os.cpu_count() or 1)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if cuda:
        # The render job's default: one actor per GPU of the cluster.
        workers = args.workers
        print(f"layout: the forward pass in this process on the GPU; the render job {workers or gpus} actor(s) of "
              "one GPU each", flush=True)
    else:
        workers = args.workers or max(1, cpus // args.threads)
        print(f"layout: {workers} process(es) / actor(s) of {args.threads} thread(s), batch "
              f"{args.batch_size or default_batch_size(device, '')}", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="sing-bench-") as tmp:
            folder = Path(tmp)
            for name in presets + (["checkpoint"] if args.checkpoint else []):
                if name == "checkpoint":
                    path, label = Path(args.checkpoint), args.checkpoint
                else:
                    path, label = _checkpoint(folder, name), name
                ckpt = load_checkpoint(path)
                flops = flops_per_note(path)
                grid = _grid(int(counts.get(name, 256)), ckpt["extra"]["instruments"])
                del ckpt
                notes = [(i, p, v) for i in grid[0].split(",") for p in parse_pitches(grid[1])
                         for v in parse_velocities(grid[2])]
                batch = args.batch_size or default_batch_size(device, name)
                print(f"{label}: {len(notes)} notes, {flops / 1e9:.2f} GFLOP per note, batch {batch}", flush=True)
                agree = None
                if cuda:
                    agree = report["agreement"][label] = agreement(path, device)
                    print(f"  {label}: the GPU against the CPU's float32 (rms {agree['reference_rms']:.3g}): "
                          + ", ".join(f"{k} {v:.1e}" for k, v in agree.items() if k != "reference_rms"), flush=True)
                for dtype in dtypes:
                    # Forward and render alternate; the fastest of each counts (on a shared machine
                    # other jobs only ever slow a measurement down).
                    fwd = job = None
                    for rep in range(args.repeats):
                        reference = args.reference_batches if rep == 0 else 0
                        f = (time_forward_here(path, dtype, notes, batch, reference, device) if cuda else
                             _time_forward(path, dtype, notes, batch, reference, workers, args.threads))
                        j = _time_render(path, folder / f"lib-{name}-{dtype}-{rep}", dtype, grid, batch, workers,
                                         args.threads, use_gpu=cuda)
                        if fwd is None or f["forward_s"] < fwd["forward_s"]:
                            fwd = {**(fwd or {}), **f}
                        if job is None or j["render_s"] < job["render_s"]:
                            job = j
                    row = _row(label, dtype, fwd, job, flops, peaks, cpu_peaks, agree)
                    report["rows"].append(row)
                    print(_describe(row), flush=True)
            if args.serve_preset != "none":
                path = _checkpoint(folder, args.serve_preset)
                print(f"serve: {args.serve_preset} {args.serve_dtype}{' on the GPU' if cuda else ''}", flush=True)
                replicas = args.serve_replicas or (max(1, gpus) if cuda else max(1, cpus // args.threads))
                report["serve"] = _time_serve(path, args.serve_dtype, clients, args.requests_per_client, replicas,
                                              args.threads, use_gpu=cuda)
    finally:
        if started:
            ray.shutdown()
    report["load_end"] = os.getloadavg()
    print(f"load average at the end: {report['load_end'][0]:.2f} {report['load_end'][1]:.2f} "
          f"{report['load_end'][2]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0
