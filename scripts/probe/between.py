"""What lies between an instrument's trained pitches: held-out notes made from their neighbours.

For each held-out note of a packed run (``seqcurve_gpu.py pack``), the frames the run's encoder
gave the same instrument at the same velocity at the nearest trained pitches below and above,
interpolated linearly in pitch (``interpolate_pitches``), or the nearest one alone; played by the
run's frozen decoder and scored as ``seqcurve_gpu.py curve`` scores the LSTM's frames:

    PYTHONPATH=. python scripts/probe/between.py OUT.pt

With harmonic frames this is the bar for the sequence phase's held-out notes: an LSTM that
generalises between pitches no better than this has learnt nothing an interpolation would not.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from sing_ray.checkpoint import load_model
from sing_ray.dsp import log_power


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path", help="a file from scripts/probe/seqcurve_gpu.py pack")
    args = p.parse_args()
    torch.set_num_threads(1)
    data = torch.load(args.path, weights_only=False)
    autoencoder, _ = load_model(data["autoencoder"])
    autoencoder.eval()
    tr, te = data["train"], data["test"]
    frames = tr["frames"].float()
    real = te["wav"].float() / 32767
    made: dict[str, list[torch.Tensor]] = {"interpolated": [], "nearest": []}
    for j in range(len(te["pitch"])):
        inst, pitch, vel = int(te["instrument"][j]), int(te["pitch"][j]), int(te["velocity"][j])
        mine = (tr["instrument"] == inst) & (tr["velocity"] == vel)
        pitches, own = tr["pitch"][mine], frames[mine]
        sides = []
        if (pitches < pitch).any():
            a = int(pitches[pitches < pitch].max())
            sides.append((a, own[pitches == a][0]))
        if (pitches > pitch).any():
            b = int(pitches[pitches > pitch].min())
            sides.append((b, own[pitches == b][0]))
        if not sides:
            raise SystemExit(f"test note {j}: its instrument has no train note at its velocity")
        if len(sides) == 2:
            (a, fa), (b, fb) = sides
            w = (pitch - a) / (b - a)
            made["interpolated"].append((1 - w) * fa + w * fb)
        else:
            made["interpolated"].append(sides[0][1])     # at the end of the range: the nearest
        made["nearest"].append(min(sides, key=lambda s: abs(s[0] - pitch))[1])
    silence = (log_power(torch.zeros_like(real)) - log_power(real)).abs().mean().item()
    rms_real = 10 * torch.log10(real.square().mean(-1) + 1e-20)
    print(f"{len(real)} held-out notes; silence's spectral L1 {silence:.5f}")
    with torch.no_grad():
        for name, rows in made.items():
            f = torch.stack(rows)
            wav = torch.cat([autoencoder.decode(f[i:i + 16], te["pitch"][i:i + 16])
                             for i in range(0, len(f), 16)])[:, :real.shape[-1]]
            l1 = (log_power(wav) - log_power(real)).abs().mean().item()
            rms = 10 * torch.log10(wav.square().mean(-1) + 1e-20)
            d = (rms - rms_real).numpy()
            print(f"{name:12s}: spectral L1 {l1:.5f} = {l1 / silence:.3f} x silence's, level {np.median(d):+.1f} dB "
                  f"(|{np.median(np.abs(d)):.1f}|), {int((rms < -60).sum())} under -60 dBFS")


if __name__ == "__main__":
    main()
