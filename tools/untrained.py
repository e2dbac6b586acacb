"""How close a config's untrained autoencoder comes to the real notes: the bound its frames' form sets.

With harmonic frames the untrained autoencoder plays back the partials its encoder measures
(the quality diary, section 10), so its spectral L1 on real notes is the bound that the grid
of partials (and the noise bands) sets before any training. This prints it, against an
all-zero output's, overall and per instrument, with the long-term spectrum distance, for a
preset and variants of it given as ``--set`` overrides:

    python -m tools.untrained DATASET [--preset quick] [--variant "model.partials=128;model.sub_octaves=1"] ...

Each ``--variant`` is one row (``KEY=VALUE`` items joined by ``;``, as ``sing-ray train --set``
takes them); the preset itself is the first row. An instrument whose score falls as the grid
reaches under the pitch (``model.sub_octaves``) has sound under its MIDI pitch (an organ's 16-
and 32-foot stops); one whose score rises is one whose low notes the finer grid cannot resolve.
The models are built and played as ``sing-ray evaluate`` plays an autoencoder checkpoint.
"""
from __future__ import annotations

import argparse
import io

import numpy as np


def untrained_checkpoint(preset: str, overrides: list[str], seed: int = 0) -> bytes:
    """An untrained autoencoder of ``preset`` with ``overrides``, as checkpoint bytes."""
    import torch

    from sing_ray.checkpoint import make_checkpoint
    from sing_ray.config import load_config
    from sing_ray.models import build_autoencoder

    cfg = load_config(preset, overrides=overrides)
    torch.manual_seed(seed)
    buffer = io.BytesIO()
    torch.save(make_checkpoint(build_autoencoder(cfg.model), config=cfg, phase="autoencoder", epoch=0), buffer)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.untrained", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("dataset", help="an ingested dataset")
    parser.add_argument("--split", default="test")
    parser.add_argument("--preset", default="quick", help="the config the variants start from")
    parser.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE[;KEY=VALUE]",
                        help="a row: the preset with these overrides (repeat for more rows)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)

    import torch

    from sing_ray.config import ConfigError
    from sing_ray.data.dataset import WAV_COLUMN
    from sing_ray.evaluate import build_note_model, note_metrics

    from ._notes import batched, read_notes

    torch.set_num_threads(args.threads)
    notes = read_notes(args.dataset, args.split)
    instruments = np.asarray(notes["instrument_str"]).astype(str)
    names = sorted(set(instruments))
    print(f"{len(instruments)} {args.split} notes of {args.dataset}; the untrained autoencoder of {args.preset}:")
    print("| variant | L1 / silence's | lts dB | " + " | ".join(names) + " |")
    print("| --- " * (3 + len(names)) + "|")
    for variant in ["", *args.variant]:
        overrides = [x.strip() for x in variant.split(";") if x.strip()]
        try:
            checkpoint = untrained_checkpoint(args.preset, overrides)
        except ConfigError as err:
            parser.error(f"--variant {variant!r}: {err}")
        fn, _ = build_note_model(checkpoint)
        out = batched(fn, notes)
        scores = note_metrics(out, notes[WAV_COLUMN], with_pitch=False, with_reference_pitch=False,
                              with_embedding=False)
        l1, zero = scores["spectral_l1"], scores["spectral_l1_silence"]
        ratio = [l1[instruments == n].sum() / zero[instruments == n].sum() for n in names]
        print(f"| {variant or args.preset} | {l1.sum() / zero.sum():.3f} | {np.median(scores['lts_db']):.1f} | "
              + " | ".join(f"{r:.2f}" for r in ratio) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
