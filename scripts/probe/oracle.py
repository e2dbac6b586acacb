"""The best the decoder's form can do: per-frame partial amplitudes (and noise levels) fitted to each real note.

No encoder and no sequence model: for every note of a split, the amplitudes of the decoder's
partials in each of its 265 frames (and, with --noise-bands, its noise levels) are free
parameters, fitted by Adam to the paper's spectral L1 against that very note, and rendered by
the decoder's own synthesis (:func:`partial_windows`, :func:`noise_windows`). What is left is
what no training of this form can remove, so it bounds what the model can reach:

    python scripts/probe/oracle.py DATASET [--split test] [--partials 64] [--noise-bands 0]
                                   [--subharmonic] [--steps 300] [--measured]

--measured fits nothing: each frame's amplitudes are the partials' magnitudes measured in the
real note (:func:`partial_magnitudes`), played straight back, as an untrained autoencoder with
harmonic frames does.

--subharmonic plays the partials of the octave below the MIDI pitch (twice as many, so the
same top frequency): every k * f0 / 2, which reaches a sub-octave and partials between the
harmonics. Prints the spectral L1 against an all-zero output's, overall and per instrument.
"""
from __future__ import annotations

import argparse
import glob
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from sing_ray.data.dataset import decode_audio
from sing_ray.dsp import log_power, pad_wav, unpad_wav
from sing_ray.models.autoencoder import ConvolutionalDecoder, noise_windows, partial_magnitudes, partial_windows

PAD = 2304


def fit(wav: torch.Tensor, pitch: torch.Tensor, partials: int, noise_bands: int, steps: int) -> torch.Tensor:
    """(B, 64000) real notes -> (B, 64000) the decoder-form notes fitted to them."""
    decoder = ConvolutionalDecoder(dimension=4, channels=8, partials=partials, conv_synthesis=False,
                                   noise_bands=noise_bands)
    frames = decoder.embedding_length(wav.shape[1] + 2 * PAD)
    raw = torch.full((wav.shape[0], frames, partials), -5.0, requires_grad=True)
    params = [raw]
    if noise_bands:
        raw_noise = torch.full((wav.shape[0], frames, noise_bands), -7.0, requires_grad=True)
        params.append(raw_noise)
    target = log_power(wav)
    optimizer = torch.optim.Adam(params, lr=0.1)

    def render() -> torch.Tensor:
        pieces = partial_windows(F.softplus(raw), pitch, 0)
        if noise_bands:
            pieces = pieces + noise_windows(F.softplus(raw_noise), 0, decoder.noise_phases,
                                            decoder.noise_bands_to_bins)
        return unpad_wav(decoder._overlap_add(pieces), PAD)

    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.l1_loss(log_power(render()), target)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return render()


def measured(wav: torch.Tensor, pitch: torch.Tensor, partials: int) -> torch.Tensor:
    """(B, 64000) real notes -> their partials, measured per frame and played back."""
    decoder = ConvolutionalDecoder(dimension=4, channels=8, partials=partials, conv_synthesis=False)
    amplitudes = partial_magnitudes(pad_wav(wav, PAD), pitch, partials).transpose(1, 2)
    return unpad_wav(decoder._overlap_add(partial_windows(amplitudes, pitch, 0)), PAD)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("--split", default="test")
    p.add_argument("--partials", type=int, default=64)
    p.add_argument("--noise-bands", type=int, default=0)
    p.add_argument("--subharmonic", action="store_true")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--measured", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    table = pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(f"{args.dataset}/notes/part-{args.split}-*.parquet"))])
    wav = torch.as_tensor(decode_audio(table.column("audio")))
    ins = table.column("instrument_str").to_pylist()
    pitch = torch.as_tensor(table.column("pitch").to_pylist())
    partials = args.partials * (2 if args.subharmonic else 1)
    played = pitch - 12 if args.subharmonic else pitch
    start = time.perf_counter()
    with torch.set_grad_enabled(not args.measured):
        out = torch.cat([measured(wav[i:i + 16], played[i:i + 16], partials) if args.measured
                         else fit(wav[i:i + 16], played[i:i + 16], partials, args.noise_bands, args.steps)
                         for i in range(0, len(ins), 16)])
    err = (log_power(out) - log_power(wav)).abs().mean(dim=(1, 2)).numpy()
    err0 = (log_power(torch.zeros_like(wav)) - log_power(wav)).abs().mean(dim=(1, 2)).numpy()
    how = "measured" if args.measured else f"{args.noise_bands} noise bands, {args.steps} steps"
    print(f"{len(ins)} {args.split} notes, {partials} partials{' an octave down' if args.subharmonic else ''}, "
          f"{how} ({time.perf_counter() - start:.0f} s): "
          f"spectral L1 {err.mean():.4f}, silence's {err0.mean():.4f} ({err.mean() / err0.mean():.2f} x)")
    for name in sorted(set(ins)):
        idx = [i for i, x in enumerate(ins) if x == name]
        print(f"  {name:26s} {err[idx].mean() / err0[idx].mean():.2f} ({err[idx].mean():.4f} of {err0[idx].mean():.4f})")


if __name__ == "__main__":
    main()
