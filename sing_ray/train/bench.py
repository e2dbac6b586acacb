"""Training-step throughput: Ray Train on one worker against a plain PyTorch loop.

For each preset and phase, the same model, the same batches and the same step
function (:mod:`sing_ray.train.steps`) run twice in one process and one Ray
session:

- ``plain``: a single-process loop over tensors made from the batches' numpy arrays;
- ``ray``: a ``TorchTrainer`` with one worker that reads the same rows from a
  materialized Ray Dataset through ``ray.train.get_dataset_shard`` and times the
  same steps inside the worker.

Both time ``repeats`` windows of ``steps`` steps after ``warmup`` steps, data
loading included, with the same number of torch threads, and keep each side's
fastest window: on a machine shared with other processes, the fastest window is
the one least disturbed by them, for both sides alike. The ratio
``ray / plain`` is Ray Train's overhead (target: above 0.9).

Each window is also measured in CPU time of the whole process (every thread:
the training loop and, on the Ray side, Ray's own threads in the worker). On a
machine where other processes compete for the cores, wall time mostly measures
when the scheduler let the loop run; CPU time measures the work each side did,
so ``cpu_ratio`` (notes per CPU-second, Ray over plain) is the steadier figure
of Ray's overhead there. Work Ray does in other processes (the raylet, the
dataset's split coordinator) is not in it; it shows in the wall-clock ratio. The FLOPs of one step are counted with
``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions, forward and
backward; the FFTs of the spectral loss are not counted) plus the LSTM's matmuls,
which that counter does not see inside ``aten::lstm`` and which are added
analytically (:func:`lstm_train_flops`); the achieved GFLOP/s is compared with
the machine's measured fp32 GEMM peak.

Both sides run on one device, ``cpu`` or ``cuda`` (:func:`check_device` refuses a CUDA
device this machine does not have before anything starts). On CUDA the table also gives
the largest memory a step of the plain loop took, and ``tf32`` chooses TensorFloat-32 for
both sides' matmuls and convolutions: ``off`` (strict float32, what the CPU computes),
``default`` (PyTorch's: in cuDNN's convolutions, not in matmuls; what a training run gets)
or ``on`` (in both). The GEMM peak is measured under the same setting.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..config import PHASES, Config, load_config
from ..errors import UserError
from ..losses import build_loss
from ..models import build_autoencoder, build_sequence_generator, build_sing
from ..nsynth import VELOCITIES
from ..runtime import keep_freed_memory
from .steps import autoencoder_step, finetune_step, sequence_step, velocity_indices

log = logging.getLogger(__name__)

NUM_INSTRUMENTS = 16


@dataclass
class BenchRow:
    """One preset x phase of the benchmark.

    Attributes:
        notes_per_second_ray, notes_per_second_plain: throughput of the timed steps.
        ratio: ray / plain (1.0 = no overhead).
        gflop_per_step: counted FLOPs of one step, in GFLOP.
        gflops_ray, gflops_plain: achieved GFLOP/s.
        peak_gflops: the measured GEMM peak on the same device and threads.
        ray_wall_seconds: the whole ``TorchTrainer.fit()``, worker start-up included.
        repeats: timed windows per side (the fastest counts).
        notes_per_cpu_second_ray, notes_per_cpu_second_plain, cpu_ratio: the same in
            process CPU time (fastest window each).
        peak_memory_gib: on CUDA, the most memory the plain loop's steps held (0 on the CPU).
        tf32: the TensorFloat-32 setting both sides ran under (:data:`TF32_SETTINGS`).
    """

    preset: str
    phase: str
    device: str
    threads: int
    batch_size: int
    steps: int
    notes_per_second_ray: float
    notes_per_second_plain: float
    ratio: float
    gflop_per_step: float
    gflops_ray: float
    gflops_plain: float
    peak_gflops: float
    ray_wall_seconds: float
    repeats: int = 1
    notes_per_cpu_second_ray: float = 0.0
    notes_per_cpu_second_plain: float = 0.0
    cpu_ratio: float = 0.0
    peak_memory_gib: float = 0.0
    tf32: str = "default"


ROWS_PER_BLOCK = 64
DEVICES = ("cpu", "cuda")
# TensorFloat-32 in (matmuls, cuDNN's convolutions); None leaves PyTorch's default
# (matmuls off, convolutions on). It changes nothing on a CPU.
TF32_SETTINGS = {"off": (False, False), "default": (None, None), "on": (True, True)}


def check_device(device: str) -> str:
    """The device a benchmark asks for, checked before anything starts.

    Returns:
        ``device`` (``cpu`` or ``cuda``). Raises UserError for another name, or for ``cuda``
        on a machine where torch sees no CUDA device, saying which torch it is.
    """
    if device not in DEVICES:
        raise UserError(f"--device {device!r}: expected one of {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        built = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise UserError(f"--device cuda: torch {torch.__version__} ({built}) sees no CUDA device on this "
                        "machine; run the benchmark where there is a GPU, or on the CPU (--device cpu)")
    return device


def set_tf32(setting: str) -> None:
    """Apply one of :data:`TF32_SETTINGS` to this process (``default``: PyTorch's own)."""
    if setting not in TF32_SETTINGS:
        raise UserError(f"--tf32 {setting!r}: expected one of {', '.join(TF32_SETTINGS)}")
    matmul, cudnn = TF32_SETTINGS[setting]
    torch.backends.cuda.matmul.allow_tf32 = False if matmul is None else matmul
    torch.backends.cudnn.allow_tf32 = True if cudnn is None else cudnn


def measure_gemm_peak(device: str = "cpu", n: int = 2048, repeats: int = 10, threads: int | None = None) -> float:
    """The fp32 GFLOP/s of a large square matmul (best of ``repeats``): the machine's practical peak."""
    if threads:
        torch.set_num_threads(threads)
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats + 1):
        _sync(device)
        t = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def synthetic_rows(cfg: Config, phase: str, num_rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Batches of made-up notes for ``phase``: symbols plus ``wav`` (B, T) or ``embedding`` (B, D, F)."""
    rng = np.random.default_rng(seed)
    rows = {"instrument": rng.integers(0, NUM_INSTRUMENTS, num_rows).astype(np.int32),
            "pitch": rng.integers(24, 96, num_rows).astype(np.int32),
            "velocity": rng.choice(VELOCITIES, num_rows).astype(np.int32)}
    if phase == "sequence":
        rows["embedding"] = rng.standard_normal((num_rows, cfg.model.dimension, cfg.num_frames),
                                                dtype=np.float32)
    else:
        t = np.arange(cfg.model.wav_length, dtype=np.float32) / 16000
        f0 = 440 * 2 ** ((rows["pitch"][:, None] - 69) / 12)
        rows["wav"] = (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32)
    return rows


def build_model(cfg: Config, phase: str) -> torch.nn.Module:
    """The model phase ``phase`` trains, with random weights."""
    if phase == "autoencoder":
        return build_autoencoder(cfg.model)
    if phase == "sequence":
        return build_sequence_generator(cfg.model, NUM_INSTRUMENTS)
    return build_sing(cfg.model, NUM_INSTRUMENTS)


def bench_step(cfg: Config, phase: str, model, optimizer, batch: dict[str, np.ndarray], device,
               loss_fn=None) -> torch.Tensor:
    """One training step of ``phase`` on a numpy batch (conversion to tensors included).

    ``loss_fn``: the phase's waveform loss, built once by the caller as the training loops
    do (None: built here, from ``cfg.train``).
    """
    symbols = (torch.from_numpy(batch["instrument"].astype(np.int64)).to(device),
               torch.from_numpy(batch["pitch"].astype(np.int64)).to(device),
               velocity_indices(torch.from_numpy(batch["velocity"].astype(np.int64)).to(device)))
    t = cfg.train
    if phase == "sequence":
        target = torch.from_numpy(np.array(batch["embedding"], dtype=np.float32)).to(device)
        return sequence_step(model, optimizer, *symbols, target, t.truncated_steps, F.mse_loss)
    wav = torch.from_numpy(np.array(batch["wav"], dtype=np.float32)).to(device)
    loss_fn = loss_fn if loss_fn is not None else build_loss(t)
    if phase == "autoencoder":
        return autoencoder_step(model, optimizer, wav, loss_fn, pitch=symbols[1])
    return finetune_step(model, optimizer, *symbols, wav, loss_fn)


def _slices(rows: dict[str, np.ndarray], batch_size: int):
    n = len(rows["pitch"])
    for start in range(0, n - batch_size + 1, batch_size):
        yield {k: v[start:start + batch_size] for k, v in rows.items()}


def lstm_train_flops(lstm: torch.nn.LSTM, num_steps: int, batch_size: int) -> float:
    """Matmul FLOPs of an LSTM's forward and backward over ``num_steps`` steps of ``batch_size`` sequences.

    Per layer and step the four gates cost ``2 * 4H * (I + H)`` FLOPs forward (input and
    recurrent matmuls); backward costs twice that (gradients of inputs and of weights).
    """
    hidden = lstm.hidden_size
    per_step = sum(2 * 4 * hidden * ((lstm.input_size if layer == 0 else hidden) + hidden)
                   for layer in range(lstm.num_layers))
    return 3.0 * per_step * num_steps * batch_size


def count_step_flops(cfg: Config, phase: str, batch_size: int, device: str = "cpu") -> float:
    """FLOPs of one training step (forward, backward; matmuls, convolutions and the LSTM)."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = build_model(cfg, phase).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.phase(phase).lr)
    batch = next(_slices(synthetic_rows(cfg, phase, batch_size), batch_size))
    counter = FlopCounterMode(display=False)
    with counter:
        bench_step(cfg, phase, model, optimizer, batch, device)
    # FlopCounterMode sees no matmul inside aten::lstm on CPU: add the LSTM's analytically.
    lstms = [m for m in model.modules() if isinstance(m, torch.nn.LSTM)]
    return float(counter.get_total_flops()) + sum(lstm_train_flops(m, cfg.num_frames, batch_size) for m in lstms)


class _Windows:
    """Times consecutive windows of ``steps`` steps after ``warmup`` steps, in wall and CPU time."""

    def __init__(self, warmup: int, steps: int, device: str):
        self.warmup, self.steps, self.device = warmup, steps, str(device)
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []
        self.started = self.cpu_started = 0.0

    def before(self, i: int) -> None:
        if i >= self.warmup and (i - self.warmup) % self.steps == 0:
            _sync(self.device)
            self.started, self.cpu_started = time.perf_counter(), time.process_time()

    def after(self, i: int, loss: torch.Tensor) -> None:
        if i >= self.warmup and (i - self.warmup) % self.steps == self.steps - 1:
            float(loss)
            _sync(self.device)
            self.seconds.append(time.perf_counter() - self.started)
            self.cpu_seconds.append(time.process_time() - self.cpu_started)


def plain_loop(cfg: Config, phase: str, rows: dict[str, np.ndarray], batch_size: int, warmup: int,
               device: str, threads: int, steps: int | None = None,
               tf32: str = "default") -> tuple[list[float], int, list[float]]:
    """The reference: a single-process loop.

    Returns:
        (wall seconds of each timed window of ``steps`` steps, notes per window, CPU seconds
        of each window); ``steps`` None: one window over all the batches after the warmup.
    """
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    keep_freed_memory()
    set_tf32(tf32)
    model = build_model(cfg, phase).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.phase(phase).lr)
    steps = steps or len(rows["pitch"]) // batch_size - warmup
    windows = _Windows(warmup, steps, device)
    loss_fn = build_loss(cfg.train)
    for i, batch in enumerate(_slices(rows, batch_size)):
        windows.before(i)
        loss = bench_step(cfg, phase, model, optimizer, batch, device, loss_fn)
        windows.after(i, loss)
    return windows.seconds, steps * batch_size, windows.cpu_seconds


def _ray_bench_loop(config: dict) -> None:
    """Ray Train worker of the benchmark: the plain loop's steps over the dataset shard."""
    import ray.train
    import ray.train.torch

    from ..config import config_from_dict

    cfg = config_from_dict(config["config"])
    phase, batch_size, warmup, threads = config["phase"], config["batch_size"], config["warmup"], config["threads"]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    keep_freed_memory()  # as the training loops do (sing_ray.train.loops.setup_worker)
    set_tf32(config.get("tf32", "default"))
    device = ray.train.torch.get_device()
    model = ray.train.torch.prepare_model(build_model(cfg, phase))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.phase(phase).lr)
    shard = ray.train.get_dataset_shard("train")
    windows = _Windows(warmup, config["steps"], str(device))
    loss_fn = build_loss(cfg.train)
    for i, batch in enumerate(shard.iter_batches(batch_size=batch_size, batch_format="numpy", drop_last=True)):
        windows.before(i)
        loss = bench_step(cfg, phase, model, optimizer, batch, device, loss_fn)
        windows.after(i, loss)
    metrics = {"seconds": windows.seconds, "cpu_seconds": windows.cpu_seconds,
               "notes": config["steps"] * batch_size}
    # Ray Train's result holds the metrics of the latest checkpoint: report a (tiny) one.
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "timing.json").write_text(json.dumps(metrics))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def ray_loop(cfg: Config, phase: str, rows: dict[str, np.ndarray], batch_size: int, warmup: int,
             use_gpu: bool, threads: int, storage: str, steps: int,
             tf32: str = "default") -> tuple[list[float], int, float, list[float]]:
    """Ray Train on one worker. Returns (wall seconds of each window of ``steps`` steps, notes per
    window, fit wall seconds, CPU seconds of each window)."""
    import ray.data
    import ray.train
    from ray.train.torch import TorchTrainer


    n = len(rows["pitch"])
    items = [{k: v[i] for k, v in rows.items()} for i in range(n)]
    ctx = ray.data.DataContext.get_current()
    saved, ctx.enable_progress_bars = ctx.enable_progress_bars, False
    try:
        # Blocks of many rows, as the training pipeline's datasets have (Parquet files read
        # whole): from_items' default of one row per block makes every batch gather its rows
        # from several blocks through the shard's coordinator actor, tens of milliseconds a
        # batch, which is Ray Data's per-block cost and not Ray Train's.
        dataset = ray.data.from_items(items, override_num_blocks=max(1, -(-n // ROWS_PER_BLOCK))).materialize()
        trainer = TorchTrainer(
            _ray_bench_loop,
            train_loop_config={"config": asdict(cfg), "phase": phase, "batch_size": batch_size,
                               "warmup": warmup, "threads": threads, "steps": steps, "tf32": tf32},
            scaling_config=ray.train.ScalingConfig(num_workers=1, use_gpu=use_gpu,
                                                   resources_per_worker={"CPU": threads}),
            run_config=ray.train.RunConfig(name=f"bench-{cfg.preset}-{phase}-{os.getpid()}-{time.time_ns()}",
                                           storage_path=storage),
            datasets={"train": dataset})
        t = time.perf_counter()
        result = trainer.fit()
        wall = time.perf_counter() - t
    finally:
        ctx.enable_progress_bars = saved
    metrics = result.metrics
    return ([float(s) for s in metrics["seconds"]], int(metrics["notes"]), wall,
            [float(s) for s in metrics["cpu_seconds"]])


def run_benchmark(presets: Sequence[str] = ("small", "paper"), phases: Sequence[str] = PHASES, *,
                  steps: dict[str, int] | None = None, batch_sizes: dict[str, int] | None = None,
                  warmup: int = 1, repeats: int = 3, use_gpu: bool = False, threads: int | None = None,
                  storage: str = "/tmp/sing-ray-bench", device: str | None = None,
                  tf32: str = "default") -> list[BenchRow]:
    """Benchmark each preset x phase; Ray must be initialised. Returns one :class:`BenchRow` each.

    Args:
        presets: config presets to measure.
        steps: steps per timed window, per preset (default: small 8, paper 2, tiny 8).
        batch_sizes: notes per step per preset (default: small 8, paper 2, tiny 8;
            the paper's batch of 64 takes minutes per step on a CPU).
        warmup: untimed steps first (allocation, lazy initialisation).
        repeats: timed windows of the Ray loop, and of each of the two plain loops (before and
            after it); each side's fastest counts.
        use_gpu: run both loops on a GPU (``device="cuda"``).
        threads: torch threads of both loops (default: all cores).
        device: ``cpu`` or ``cuda`` (None: as ``use_gpu`` says); checked by :func:`check_device`.
        tf32: one of :data:`TF32_SETTINGS`, for both loops and the GEMM peak.
    """
    steps = {"small": 8, "paper": 2, "tiny": 8, **(steps or {})}
    batch_sizes = {"small": 8, "paper": 2, "tiny": 8, **(batch_sizes or {})}
    threads = threads or os.cpu_count() or 1
    device = check_device(device or ("cuda" if use_gpu else "cpu"))
    use_gpu = device == "cuda"
    set_tf32(tf32)
    peak = measure_gemm_peak(device, threads=threads)
    log.info("GEMM peak (fp32, %s, %d threads): %.1f GFLOP/s", device, threads, peak)
    out: list[BenchRow] = []
    for preset in presets:
        cfg = load_config(preset)
        batch, n_steps = batch_sizes[preset], steps[preset]
        for phase in phases:
            rows = synthetic_rows(cfg, phase, batch * (warmup + n_steps * repeats))
            flops = count_step_flops(cfg, phase, batch)
            if use_gpu:
                torch.cuda.reset_peak_memory_stats()
            # The plain loop runs before and after Ray, so that neither side gets the quieter
            # moment of a shared machine by its place in the order.
            plain_windows, notes, plain_cpu = plain_loop(cfg, phase, rows, batch, warmup, device, threads, n_steps,
                                                         tf32)
            ray_windows, _, wall, ray_cpu = ray_loop(cfg, phase, rows, batch, warmup, use_gpu, threads, storage,
                                                     n_steps, tf32)
            more_windows, _, more_cpu = plain_loop(cfg, phase, rows, batch, warmup, device, threads, n_steps, tf32)
            # The Ray worker is another process: this one's peak is the plain loops' alone.
            memory = torch.cuda.max_memory_allocated() / 2 ** 30 if use_gpu else 0.0
            plain_windows, plain_cpu = plain_windows + more_windows, plain_cpu + more_cpu
            torch.set_num_threads(threads)
            plain_s, ray_s = min(plain_windows), min(ray_windows)
            log.info("%s %s windows, wall (cpu) s: plain %s; ray %s", preset, phase,
                     " ".join(f"{w:.2f} ({c:.2f})" for w, c in zip(plain_windows, plain_cpu)),
                     " ".join(f"{w:.2f} ({c:.2f})" for w, c in zip(ray_windows, ray_cpu)))
            plain_rate, ray_rate = notes / plain_s, notes / ray_s
            plain_cpu_rate, ray_cpu_rate = notes / min(plain_cpu), notes / min(ray_cpu)
            row = BenchRow(preset=preset, phase=phase, device=device, threads=threads, batch_size=batch,
                           steps=n_steps, notes_per_second_ray=ray_rate, notes_per_second_plain=plain_rate,
                           ratio=ray_rate / plain_rate, gflop_per_step=flops / 1e9,
                           gflops_ray=flops * n_steps / ray_s / 1e9, gflops_plain=flops * n_steps / plain_s / 1e9,
                           peak_gflops=peak, ray_wall_seconds=wall, repeats=repeats,
                           notes_per_cpu_second_ray=ray_cpu_rate, notes_per_cpu_second_plain=plain_cpu_rate,
                           cpu_ratio=ray_cpu_rate / plain_cpu_rate, peak_memory_gib=memory, tf32=tf32)
            log.info("%s %s: ray %.2f notes/s, plain %.2f notes/s, ratio %.3f", preset, phase, ray_rate,
                     plain_rate, row.ratio)
            out.append(row)
    # Measured again at the end: on a shared machine either moment may have been a busy one,
    # and a peak measured low would inflate every "% of peak".
    again = measure_gemm_peak(device, threads=threads)
    log.info("GEMM peak again (fp32, %s, %d threads): %.1f GFLOP/s", device, threads, again)
    for row in out:
        row.peak_gflops = max(peak, again)
    return out


def format_table(rows: Sequence[BenchRow]) -> str:
    """A Markdown table of the benchmark."""
    head = ("| preset | phase | device | batch | steps x windows | notes/s Ray | notes/s plain | Ray/plain "
            "| notes/CPU-s Ray | notes/CPU-s plain | Ray/plain (CPU) | GFLOP/step "
            "| GFLOP/s Ray | GFLOP/s plain | % of GEMM peak (plain) |")
    lines = [head, "|" + "---|" * 15]
    for r in rows:
        lines.append(f"| {r.preset} | {r.phase} | {r.device} x{r.threads} | {r.batch_size} | {r.steps} x {r.repeats} "
                     f"| {r.notes_per_second_ray:.2f} | {r.notes_per_second_plain:.2f} | {r.ratio:.3f} "
                     f"| {r.notes_per_cpu_second_ray:.2f} | {r.notes_per_cpu_second_plain:.2f} | {r.cpu_ratio:.3f} "
                     f"| {r.gflop_per_step:.1f} | {r.gflops_ray:.1f} | {r.gflops_plain:.1f} "
                     f"| {100 * r.gflops_plain / r.peak_gflops:.0f} % |")
    if rows:
        tf32 = "" if rows[0].device == "cpu" else f", TF32 {rows[0].tf32}"
        lines.append(f"\nGEMM peak: {rows[0].peak_gflops:.1f} GFLOP/s (fp32 {rows[0].device}{tf32}, "
                     f"{rows[0].threads} threads, 2048x2048 matmul)")
    if any(r.device != "cpu" for r in rows):
        lines.append("Peak memory of a step (plain loop): " + "; ".join(
            f"{r.preset} {r.phase} {r.peak_memory_gib:.1f} GiB" for r in rows))
    return "\n".join(lines)
