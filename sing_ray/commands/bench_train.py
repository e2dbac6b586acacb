"""``sing-ray bench train``: training-step throughput of Ray Train against a plain PyTorch loop."""
from __future__ import annotations

import argparse

from ..config import PHASES, PRESETS

# sing_ray.train.bench's DEVICES and TF32_SETTINGS, named here so that --help imports no torch.
DEVICES = ("cpu", "cuda")
TF32 = ("off", "default", "on")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's arguments."""
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.description = (
        "For each preset and phase, run the same training steps on the same data and model twice in "
        "one process: a Ray Train TorchTrainer with one worker reading a Ray Dataset shard, and a plain "
        "single-process PyTorch loop. Prints notes/s for both, their ratio (Ray's overhead; target "
        "above 0.9), the step's FLOPs and the achieved GFLOP/s against this machine's measured fp32 "
        "GEMM peak. With --device cuda both sides run on the GPU, and the table also gives the "
        "memory a step took. See docs/training.md.")
    parser.add_argument("--presets", default="small,paper", metavar="LIST",
                        help=f"presets to measure, of {','.join(PRESETS)}")
    parser.add_argument("--phases", default=",".join(PHASES), metavar="LIST", help="phases to measure")
    parser.add_argument("--steps", action="append", default=[], metavar="PRESET=N",
                        help="steps per timed window of a preset (default small=8, paper=2, tiny=8)")
    parser.add_argument("--batch-size", action="append", default=[], metavar="PRESET=N",
                        help="notes per step of a preset (default small=8, paper=2, tiny=8)")
    parser.add_argument("--warmup", type=int, default=1, metavar="N", help="untimed steps before timing")
    parser.add_argument("--repeats", type=int, default=3, metavar="N",
                        help="timed windows per side; the fastest counts (robust to other processes)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch threads of both loops, and CPUs of the Ray worker (default: all cores)")
    parser.add_argument("--device", choices=DEVICES, default=None,
                        help="where both loops run (default: cpu); cuda needs a GPU that torch sees here")
    parser.add_argument("--gpu", action="store_true", help="the same as --device cuda")
    parser.add_argument("--tf32", choices=TF32, default="default",
                        help="TensorFloat-32 on CUDA: off (strict float32, as the CPU), default (PyTorch's: in "
                             "convolutions, not matmuls; what training gets), on (in both)")
    parser.add_argument("--storage", default="/tmp/sing-ray-bench", metavar="DIR",
                        help="Ray Train storage of the benchmark runs")
    parser.add_argument("--num-cpus", type=int, default=None, metavar="N",
                        help="CPUs of the local Ray started when not under `ray job submit` (default: all)")


def _per_preset(items: list[str], flag: str) -> dict[str, int]:
    from ..errors import UserError

    out = {}
    for item in items:
        preset, _, value = item.partition("=")
        if preset not in PRESETS or not value.isdigit() or int(value) < 1:
            raise UserError(f"{flag} {item!r}: expected PRESET=N with PRESET in {', '.join(PRESETS)}, N >= 1")
        out[preset] = int(value)
    return out


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table; returns 0."""
    from ..errors import UserError
    from ..runtime import init_ray
    from ..train.bench import check_device, format_table, run_benchmark

    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not presets or set(presets) - set(PRESETS):
        raise UserError(f"--presets {args.presets!r}: expected some of {', '.join(PRESETS)}")
    if not phases or set(phases) - set(PHASES):
        raise UserError(f"--phases {args.phases!r}: expected some of {', '.join(PHASES)}")
    if args.warmup < 0 or args.repeats < 1:
        raise UserError("--warmup must be >= 0 and --repeats >= 1")
    steps, batches = _per_preset(args.steps, "--steps"), _per_preset(args.batch_size, "--batch-size")
    if args.gpu and args.device not in (None, "cuda"):
        raise UserError(f"--gpu asks for --device cuda, not --device {args.device}")
    # Checked before Ray starts: a machine without the GPU asked for says so at once.
    device = check_device(args.device or ("cuda" if args.gpu else "cpu"))
    started = init_ray(num_cpus=args.num_cpus)
    try:
        rows = run_benchmark(presets, phases, steps=steps, batch_sizes=batches, warmup=args.warmup,
                             repeats=args.repeats, device=device, threads=args.threads, storage=args.storage,
                             tf32=args.tf32)
    finally:
        if started:
            import ray

            ray.shutdown()
    print(format_table(rows))
    return 0
