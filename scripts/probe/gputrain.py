"""Training on a GPU: each phase's step as the training loops run it, in notes per second.

Run from the repository root on a machine with CUDA (no Ray needed):

    PYTHONPATH=. python scripts/probe/gputrain.py [--presets quick,small,paper] [--steps 5]

For each preset and phase, the loops' own step (``sing_ray.train.steps``, the phase's loss, the
preset's crops and truncated back-propagation), random weights, synthetic notes of the preset's
batch size (``paper``: 64, as the public code's), timed over three windows of ``--steps`` steps after two
warm-up steps, the fastest window counting. Three settings side by side, in one process:

- ``fp32``: TF32 off everywhere (what the CPU computes);
- ``default``: PyTorch's defaults (TF32 in cuDNN's convolutions, not in matmuls), what a
  training run gets;
- ``tf32``: TF32 in matmuls too (``torch.backends.cuda.matmul.allow_tf32``).

Prints notes per second in each, their ratios to ``fp32``, the largest memory a step took, and
what that makes one epoch of NSynth's train split (289,205 notes) and the preset's whole recipe
on the quick start's 760 train notes (its epochs per phase).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sing_ray.config import load_config
from sing_ray.losses import FrameLoss, build_loss
from sing_ray.models import build_autoencoder, build_sequence_generator, build_sing
from sing_ray.models.autoencoder import HARMONIC_SCALE
from sing_ray.nsynth import VELOCITIES
from sing_ray.train.steps import autoencoder_step, finetune_step, sequence_step, velocity_indices

PHASES = ("autoencoder", "sequence", "finetune")
SETTINGS = {"fp32": (False, False), "default": (False, True), "tf32": (True, True)}   # (matmul, cudnn)
NSYNTH_TRAIN = 289_205
QUICKSTART_TRAIN = 760


def _batch(cfg, phase: str, size: int, device: str, generator: np.random.Generator):
    pitch = generator.integers(24, 96, size)
    symbols = (torch.from_numpy(generator.integers(0, 16, size)).to(device), torch.from_numpy(pitch).to(device),
               velocity_indices(torch.from_numpy(generator.choice(VELOCITIES, size)).to(device)))
    t = np.arange(cfg.model.wav_length, dtype=np.float32) / 16000
    f0 = 440 * 2 ** ((pitch[:, None] - 69) / 12)
    decay = np.exp(-t / 1.5)
    wav = torch.from_numpy((0.3 * np.sin(2 * np.pi * f0 * t) * decay).astype(np.float32)).to(device)
    return symbols, wav


def time_phase(cfg, phase: str, size: int, steps: int, device: str = "cuda") -> tuple[float, float]:
    """(notes per second of the fastest window, peak GiB allocated) of ``phase``'s step."""
    torch.manual_seed(0)
    t = cfg.train
    rng = np.random.default_rng(0)
    if phase == "autoencoder":
        model = build_autoencoder(cfg.model).to(device)
        loss_fn = build_loss(t, phase="autoencoder")
    elif phase == "sequence":
        model = build_sequence_generator(cfg.model, num_instruments=16).to(device)
        loss_fn = FrameLoss(t.sequence_loudness, HARMONIC_SCALE, t.sequence_audible)
        encoder = build_autoencoder(cfg.model).to(device).eval()
    else:
        model = build_sing(cfg.model, num_instruments=16).to(device)
        loss_fn = build_loss(t, phase="finetune")
    optimizer = torch.optim.Adam(model.parameters(), lr=t.phase(phase).lr)
    batches = []
    for _ in range(2):   # two batches, alternated: the data is on the GPU, as a prefetched loader's
        symbols, wav = _batch(cfg, phase, size, device, rng)
        if phase == "sequence":
            with torch.no_grad():
                wav = encoder.encode(wav, symbols[1])   # the frames the LSTM learns
        batches.append((symbols, wav))

    def step(i: int) -> torch.Tensor:
        symbols, wav = batches[i % 2]
        if phase == "autoencoder":
            return autoencoder_step(model, optimizer, wav, loss_fn, crop=t.autoencoder.crop, pitch=symbols[1])
        if phase == "sequence":
            return sequence_step(model, optimizer, *symbols, wav, t.truncated_steps, loss_fn)
        return finetune_step(model, optimizer, *symbols, wav, loss_fn, crop=t.finetune.crop)

    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for i in range(2):
        float(step(i))
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    best = float("inf")
    for _ in range(3):
        sync()
        start = time.perf_counter()
        for i in range(steps):
            loss = step(i)
        float(loss)
        sync()
        best = min(best, time.perf_counter() - start)
    return steps * size / best, (torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="quick,small,paper")
    parser.add_argument("--steps", type=int, default=5, help="steps per timed window")
    parser.add_argument("--device", default="cuda", help="cpu: a check of the script itself, one setting")
    args = parser.parse_args()
    settings = SETTINGS if args.device.startswith("cuda") else {name: SETTINGS["fp32"] for name in SETTINGS}
    print(torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU", f"torch {torch.__version__}")
    print("| preset | phase | batch | crop | notes/s fp32 | notes/s default | notes/s tf32 | default / fp32 "
          "| tf32 / fp32 | peak GiB | NSynth epoch (default) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for preset in args.presets.split(","):
        cfg = load_config(preset)
        recipe = 0.0
        for phase in PHASES:
            p = cfg.train.phase(phase)
            size = p.batch_size
            rates, memory = {}, 0.0
            for name, (matmul, cudnn) in settings.items():
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
                rates[name], mem = time_phase(cfg, phase, size, args.steps, args.device)
                memory = max(memory, mem)
            recipe += p.epochs * QUICKSTART_TRAIN / rates["default"]
            crop = getattr(p, "crop", 0) or 0
            print(f"| {preset} | {phase} | {size} | {crop or 'whole'} | {rates['fp32']:.1f} | {rates['default']:.1f} "
                  f"| {rates['tf32']:.1f} | {rates['default'] / rates['fp32']:.2f} | {rates['tf32'] / rates['fp32']:.2f} "
                  f"| {memory:.1f} | {NSYNTH_TRAIN / rates['default'] / 60:.1f} min |", flush=True)
        epochs = "/".join(str(cfg.train.phase(ph).epochs) for ph in PHASES)
        print(f"|   {preset}: its recipe ({epochs} epochs) on {QUICKSTART_TRAIN} train notes, steps alone: "
              f"{recipe / 60:.1f} min |", flush=True)


if __name__ == "__main__":
    main()
