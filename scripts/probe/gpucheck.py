"""GPU check of SING: CUDA against the CPU, bfloat16, and notes per second.

Run from the repository root on a machine with CUDA:

    PYTHONPATH=. python scripts/probe/gpucheck.py [--checkpoint runs/N/models/finetune.pt]

For each preset (randomly initialised; speed does not depend on what a model learnt) and for
a trained checkpoint if given:
- the largest relative error of the CUDA output, float32 and bfloat16, against the CPU's
  plain ``SING.forward`` in float32 (the reference), for the plain forward and for the
  Generator's fast path (what ``render`` and Serve run);
- notes per second and seconds of audio per second of the Generator's fast path on CUDA,
  float32 and bfloat16, batch by batch including the copy of the waveforms back to the host.
"""
from __future__ import annotations

import argparse
import time

import torch

from sing_ray.checkpoint import save_checkpoint
from sing_ray.config import load_config
from sing_ray.generate import Generator
from sing_ray.models import build_sing


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def rel(a, b) -> float:
    a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def check(name: str, path: str, batch: int, seconds: float, device: str = "cuda") -> None:
    cpu = Generator.from_checkpoint(path, fast=False)
    names = cpu.instruments
    rows = (names * 4)[:4], [40, 60, 72, 84], [25, 50, 100, 127]
    ref = cpu.generate(*rows)
    errs = {}
    for dtype in (torch.float32, torch.bfloat16):
        for fast in (False, True):
            gen = Generator.from_checkpoint(path, device=device, dtype=dtype, fast=fast)
            errs[f"{'fast' if fast else 'forward'} {str(dtype)[6:]}"] = rel(gen.generate(*rows), ref)
    print(f"{name}: rms of the reference {float((ref ** 2).mean() ** 0.5):.3g}; CUDA against the CPU: "
          + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()), flush=True)
    g = torch.Generator().manual_seed(0)
    grid = ([names[int(i)] for i in torch.randint(0, len(names), (batch,), generator=g)],
            torch.randint(24, 97, (batch,), generator=g).tolist(),
            [(25, 50, 75, 100, 127)[int(i)] for i in torch.randint(0, 5, (batch,), generator=g)])
    for dtype in (torch.float32, torch.bfloat16):
        gen = Generator.from_checkpoint(path, device=device, dtype=dtype)
        gen.generate(*grid)
        sync(device)
        n, t = 0, time.perf_counter()
        while time.perf_counter() - t < seconds:
            gen.generate(*grid)
            n += batch
        sync(device)
        rate = n / (time.perf_counter() - t)
        print(f"{name}: Generator fast path, {str(dtype)[6:]}, batch {batch}: {rate:,.0f} notes/s = "
              f"{4 * rate:,.0f} s of audio per s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="a trained SING (finetune) checkpoint to check too")
    parser.add_argument("--presets", default="quick,small,paper")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per throughput figure")
    parser.add_argument("--device", default="cuda", help="where to run (cpu only to try the script)")
    parser.add_argument("--out", default="/tmp", help="folder of the untrained checkpoints")
    args = parser.parse_args()
    print(torch.__version__, torch.cuda.get_device_name(0) if args.device.startswith("cuda") else args.device, flush=True)
    if args.checkpoint:
        check(f"trained {args.checkpoint}", args.checkpoint, 256, args.seconds, args.device)
    for preset in args.presets.split(","):
        cfg = load_config(preset)
        torch.manual_seed(0)
        names = [f"keyboard_synthetic_{i:03d}" for i in range(16)]
        path = save_checkpoint(f"{args.out}/{preset}.pt", build_sing(cfg.model, len(names)), config=cfg,
                               phase="finetune", epoch=0, extra={"instruments": names})
        check(f"{preset} (untrained)", str(path), 64 if preset == "paper" else 256, args.seconds, args.device)


if __name__ == "__main__":
    main()
