"""How well a trained key's frames, played at a held-out pitch, make that note: the bound between pitches.

The LSTM learns frames at the trained pitches and must make them at the held-out ones. This
asks what the frames' form allows there, with no LSTM: for each held-out note it encodes the
instrument's trained notes at the same velocity with an untrained autoencoder of a preset (and
``--set``-style variants; its layers' corrections start at zero, so it plays back what it
measures) and plays, at the held-out pitch,

- ``own``: the note's own frames (the form's bound, no step between pitches);
- ``nearest``: the nearest trained pitch's frames (``--ties lower|upper`` picks the neighbour
  half way), what ``train.sequence_interpolation=nearest`` shows the LSTM;
- ``linear``: the two neighbours' frames weighted by distance (only where there are two),
  what ``train.sequence_interpolation=linear`` shows it;

beside the nearest-key sampler (that neighbour's audio resampled, ``sing_ray.timbre.shift_pitch``).
It prints each one's median long-term spectrum distance over all bands and the loud ones
(``sing_ray.timbre``):

    python -m tools.stretch DATASET [--preset quick] [--variant "model.noise_scale=pitch"] [--ties upper]

The quality diary's section 19 measured with it why the noise moves to pitch bands.
"""
from __future__ import annotations

import argparse

import numpy as np


def _neighbours(pitch: int, trained: list[int], ties: str) -> tuple[int | None, int | None, int | None]:
    """(the nearest trained pitch, the one below, the one above) of ``pitch``."""
    below = max((p for p in trained if p < pitch), default=None)
    above = min((p for p in trained if p > pitch), default=None)
    if below is None or above is None:
        return below if above is None else above, below, above
    if pitch - below != above - pitch:
        return (below if pitch - below < above - pitch else above), below, above
    return (below if ties == "lower" else above), below, above


def faster(frames, semitones: float):
    """(B, D, T) frames played ``2 ** (semitones / 12)`` times as fast, as a sampler plays a
    key stretched up (linear between frames; the last frame held past the end)."""
    import torch

    steps = frames.shape[-1]
    where = (torch.arange(steps, dtype=torch.float64) * 2.0 ** (semitones / 12)).clamp(max=steps - 1)
    lo = where.floor().long()
    hi = (lo + 1).clamp(max=steps - 1)
    w = (where - lo).to(frames.dtype)
    return frames[..., lo] * (1 - w) + frames[..., hi] * w


def stretch_figures(dataset: str, preset: str, overrides: list[str], ties: str = "lower",
                    split: str = "test") -> dict[str, np.ndarray]:
    """``{row: (N, 2) long-term spectrum distances (all bands, loud bands)}`` of the held-out
    notes with a trained neighbour (rows ``own``, ``nearest``, ``linear``, ``sampler``; NaN
    where a row does not apply)."""
    import torch

    from sing_ray.config import load_config
    from sing_ray.data.dataset import WAV_COLUMN
    from sing_ray.models import build_autoencoder
    from sing_ray.timbre import shift_pitch, timbre_metrics

    from ._notes import read_notes

    cfg = load_config(preset, overrides=overrides)
    torch.manual_seed(0)
    model = build_autoencoder(cfg.model).eval()
    held, train = read_notes(dataset, split), read_notes(dataset, "train")
    index = {(str(i), int(v), int(p)): n for n, (i, v, p) in
             enumerate(zip(train["instrument_str"], train["velocity"], train["pitch"]))}
    rows: dict[str, list] = {"own": [], "nearest": [], "nearest, in time too": [], "linear": [], "sampler": []}

    def frames(wav: np.ndarray, pitch: int) -> torch.Tensor:
        return model.encode(torch.from_numpy(wav[None]).float(), torch.tensor([pitch]))

    def score(out: np.ndarray, real: np.ndarray) -> tuple[float, float]:
        m = timbre_metrics(out[None], real[None])
        return float(m["lts_db"][0]), float(m["lts_loud_db"][0])

    with torch.no_grad():
        for n, (instrument, velocity, pitch) in enumerate(zip(held["instrument_str"], held["velocity"], held["pitch"])):
            key = (str(instrument), int(velocity))
            trained = sorted(p for (i, v, p) in index if (i, v) == key)
            near, below, above = _neighbours(int(pitch), trained, ties)
            if near is None:
                continue
            real, target = held[WAV_COLUMN][n], torch.tensor([int(pitch)])
            play = lambda f: model.decode(f, target)[0].numpy()   # noqa: E731
            rows["own"].append(score(play(frames(real, int(pitch))), real))
            source = train[WAV_COLUMN][index[(*key, near)]]
            near_frames = frames(source, near)
            rows["nearest"].append(score(play(near_frames), real))
            rows["nearest, in time too"].append(score(play(faster(near_frames, int(pitch) - near)), real))
            if below is not None and above is not None:
                w = (int(pitch) - below) / (above - below)
                mixed = ((1 - w) * frames(train[WAV_COLUMN][index[(*key, below)]], below)
                         + w * frames(train[WAV_COLUMN][index[(*key, above)]], above))
                rows["linear"].append(score(play(mixed), real))
            else:
                rows["linear"].append((float("nan"), float("nan")))
            rows["sampler"].append(score(shift_pitch(source, int(pitch) - near, len(real)), real))
    return {name: np.asarray(values, dtype=np.float64).reshape(-1, 2) for name, values in rows.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.stretch", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("dataset", help="an ingested dataset")
    parser.add_argument("--split", default="test", help="the held-out split scored")
    parser.add_argument("--preset", default="quick", help="the config the variants start from")
    parser.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE[;KEY=VALUE]",
                        help="a table: the preset with these overrides (repeat for more)")
    parser.add_argument("--ties", choices=("lower", "upper"), default="lower",
                        help="the neighbour taken half way between two (the sampler baseline's: lower)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    for variant in ["", *args.variant]:
        overrides = [item.strip() for item in variant.split(";") if item.strip()]
        figures = stretch_figures(args.dataset, args.preset, overrides, args.ties, args.split)
        print(f"\n{args.preset}{' + ' + '; '.join(overrides) if overrides else ''}, ties {args.ties}: "
              f"{len(figures['own'])} held-out notes with a trained neighbour")
        print("| frames played at the held-out pitch | notes | lts_db | lts_loud_db |")
        print("| --- | ---: | ---: | ---: |")
        for name, values in figures.items():
            kept = values[~np.isnan(values[:, 0])]
            if len(kept):
                print(f"| {name} | {len(kept)} | {np.median(kept[:, 0]):.2f} | {np.median(kept[:, 1]):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
