"""Rendering on a GPU: the CUDA output against the CPU's, float32 and bfloat16, and notes per second.

Run from the repository root on a machine with CUDA:

    python -m tools.gpucheck [--checkpoint runs/N/models/finetune.pt] [--presets quick,small,paper]

For each preset (randomly initialised; speed does not depend on what a model learnt) and for
a trained checkpoint if given:

- the largest relative error of the CUDA output, float32 and bfloat16, against the CPU's
  plain ``SING.forward`` in float32 (the reference), for the plain forward and for the
  Generator's fast path (what ``render`` and Serve run);
- notes per second and seconds of audio per second of the Generator's fast path on CUDA,
  float32 and bfloat16, batch by batch including the copy of the waveforms back to the host.

This belongs in ``sing-ray bench render --device cuda``, which has no ``--device`` yet: the
training side of the GPU checks is ``sing-ray bench train --device cuda``.
"""
from __future__ import annotations

import argparse
import tempfile
import time


def relative_error(a, b) -> float:
    """||a - b|| / ||b|| in float32."""
    import torch

    a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def check(name: str, path: str, batch: int, seconds: float, device: str) -> None:
    """Print the CUDA-against-CPU errors and the fast path's throughput of one checkpoint."""
    import torch

    from sing_ray.generate import Generator

    cpu = Generator.from_checkpoint(path, fast=False)
    names = cpu.instruments
    rows = (names * 4)[:4], [40, 60, 72, 84], [25, 50, 100, 127]
    reference = cpu.generate(*rows)
    errors = {}
    for dtype in (torch.float32, torch.bfloat16):
        for fast in (False, True):
            gen = Generator.from_checkpoint(path, device=device, dtype=dtype, fast=fast)
            errors[f"{'fast' if fast else 'forward'} {str(dtype)[6:]}"] = relative_error(gen.generate(*rows), reference)
    print(f"{name}: rms of the reference {float((reference ** 2).mean() ** 0.5):.3g}; {device} against the CPU: "
          + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()), flush=True)
    g = torch.Generator().manual_seed(0)
    grid = ([names[int(i)] for i in torch.randint(0, len(names), (batch,), generator=g)],
            torch.randint(24, 97, (batch,), generator=g).tolist(),
            [(25, 50, 75, 100, 127)[int(i)] for i in torch.randint(0, 5, (batch,), generator=g)])
    for dtype in (torch.float32, torch.bfloat16):
        gen = Generator.from_checkpoint(path, device=device, dtype=dtype)
        gen.generate(*grid)
        torch.cuda.synchronize()
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            gen.generate(*grid)
            n += batch
        torch.cuda.synchronize()
        rate = n / (time.perf_counter() - started)
        print(f"{name}: Generator fast path, {str(dtype)[6:]}, batch {batch}: {rate:,.0f} notes/s = "
              f"{4 * rate:,.0f} s of audio per s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.gpucheck", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="a trained SING (finetune) checkpoint to check too")
    parser.add_argument("--presets", default="quick,small,paper", help="untrained presets to check")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per throughput figure")
    parser.add_argument("--device", default="cuda", help="the CUDA device")
    args = parser.parse_args(argv)

    import torch

    from sing_ray.checkpoint import save_checkpoint
    from sing_ray.config import load_config
    from sing_ray.models import build_sing

    if not args.device.startswith("cuda") or not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this check compares a CUDA device with the CPU, and "
                     f"{'torch sees no CUDA device here' if not torch.cuda.is_available() else 'that is not one'}")
    print(torch.__version__, torch.cuda.get_device_name(torch.device(args.device)), flush=True)
    if args.checkpoint:
        check(f"trained {args.checkpoint}", args.checkpoint, 256, args.seconds, args.device)
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            cfg = load_config(preset)
            torch.manual_seed(0)
            names = [f"keyboard_synthetic_{i:03d}" for i in range(16)]
            path = save_checkpoint(f"{tmp}/{preset}.pt", build_sing(cfg.model, len(names)), config=cfg,
                                   phase="finetune", epoch=0, extra={"instruments": names})
            check(f"{preset} (untrained)", str(path), 64 if preset == "paper" else 256, args.seconds, args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
