"""Which partials an autoencoder with harmonic frames can play: the bound of each grid, untrained.

With harmonic frames the untrained autoencoder plays back the partials its encoder measures
(docs/quality.md, section 10), so its spectral L1 on real notes is the bound that the grid of
partials sets before any training. This prints it (against an all-zero output's, overall and
per instrument) for grids of H partials at multiples of f0 / 2^S:

    PYTHONPATH=. python scripts/probe/grid.py DATASET [--split test] [--grids 64:0,128:1,256:2]

An instrument whose score falls as S grows has sound under its MIDI pitch (an organ's 16- and
32-foot stops); one whose score rises is one whose low notes the finer grid cannot resolve.
"""
from __future__ import annotations

import argparse
import glob

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from sing_ray.data.dataset import decode_audio
from sing_ray.evaluate import note_metrics
from sing_ray.models.autoencoder import Autoencoder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", help="an ingested dataset folder")
    p.add_argument("--split", default="test")
    p.add_argument("--grids", default="64:0,128:1,256:2", help="H:S pairs, comma-separated")
    args = p.parse_args()
    torch.set_num_threads(1)
    table = pa.concat_tables([pq.read_table(f)
                              for f in sorted(glob.glob(f"{args.dataset}/notes/part-{args.split}-*.parquet"))])
    wav = decode_audio(table.column("audio"))
    instruments = table.column("instrument_str").to_pylist()
    pitch = torch.tensor(table.column("pitch").to_pylist())
    names = sorted(set(instruments))
    print(f"{len(wav)} {args.split} notes; spectral L1 / silence's of the untrained autoencoder")
    print(f"{'grid':18s} {'all':>6s} " + " ".join(f"{n:>24s}" for n in names))
    for grid in args.grids.split(","):
        partials, sub_octaves = (int(x) for x in grid.split(":"))
        model = Autoencoder(dimension=partials, channels=256, partials=partials, conv_synthesis=False,
                            analysis_partials=partials, harmonic_frames=True, sub_octaves=sub_octaves).eval()
        with torch.no_grad():
            out = np.concatenate([model(torch.from_numpy(wav[i:i + 16]), pitch[i:i + 16]).numpy()
                                  for i in range(0, len(wav), 16)])
        scores = note_metrics(out, wav, with_pitch=False, with_reference_pitch=False, with_embedding=False)
        l1, zero = np.asarray(scores["spectral_l1"]), np.asarray(scores["spectral_l1_silence"])
        ratio = {n: l1[m].sum() / zero[m].sum() for n in names
                 for m in [np.array([i == n for i in instruments])]}
        label = f"{partials} x f0/{2 ** sub_octaves}"
        print(f"{label:18s} {l1.sum() / zero.sum():6.3f} " + " ".join(f"{ratio[n]:24.2f}" for n in names))


if __name__ == "__main__":
    main()
