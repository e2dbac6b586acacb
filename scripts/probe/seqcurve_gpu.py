"""How far more sequence epochs take a run's SING: the sequence phase alone, on a GPU.

`pack` (here, no GPU): a finished run's train embeddings, its autoencoder and the held-out
notes of its dataset, into one file small enough to carry (embeddings in float16):

    PYTHONPATH=. python scripts/probe/seqcurve_gpu.py pack runs/N DATASET OUT.pt

`curve` (on the GPU): trains the run's sequence generator afresh as the pipeline does (its
config's LSTM, Adam, batch, truncated BPTT, the rate's cosine to lr_final over EPOCHS), once
per EPOCHS given, the runs side by side in processes; every --every epochs it decodes the
held-out notes with the run's frozen decoder and prints the spectral L1 (Table 1's, the paper's
log(1 + |STFT|^2)) against an all-zero output's, the median level difference and the notes
under -60 dBFS:

    PYTHONPATH=. python scripts/probe/seqcurve_gpu.py curve OUT.pt --epochs 80,160,320 --every 40

No pitch tracking (librosa may be absent there): with harmonic frames every note plays at its
MIDI pitch. `--interpolated SHARE` adds, each epoch, SHARE times as many notes drawn afresh from
those ``interpolate_pitches`` makes between the trained pitches (``train.sequence_interpolated``).
`--set "model.hidden_size=256;model.num_layers=2"` (repeatable) trains variants of the run's
config beside it, and `--seeds 0,1` each once per seed. DEVICE=cpu runs it here (one thread each).
Each run's last epoch also prints its four quietest held-out notes beside the real ones, and
SAVE=PATH keeps its LSTM's weights there.
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import sys
import time

import numpy as np
import torch


def pack(run: str, dataset: str, out: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sing_ray.checkpoint import load_checkpoint
    from sing_ray.data.dataset import decode_audio
    from sing_ray.nsynth import velocity_index

    seq = load_checkpoint(f"{run}/models/sequence.pt")
    vocab = list(seq["extra"]["instruments"])
    emb = pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(f"{run}/embeddings/train/*.parquet"))])
    frames = np.stack([np.asarray(x, dtype=np.float32) for x in emb.column("embedding").to_numpy(zero_copy_only=False)])
    shape = json.loads(emb.schema.field("embedding").metadata[b"ARROW:extension:metadata"])   # [D, frames]
    frames = frames.reshape(len(frames), *shape)
    test = pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(f"{dataset}/notes/part-test-*.parquet"))])
    wav = decode_audio(test.column("audio"))
    torch.save({
        "config": seq["config"], "instruments": vocab,
        "autoencoder": open(f"{run}/models/autoencoder.pt", "rb").read(),
        "train": {"instrument": torch.tensor(emb.column("instrument").to_pylist()),
                  "pitch": torch.tensor(emb.column("pitch").to_pylist()),
                  "velocity": torch.tensor([velocity_index(v) for v in emb.column("velocity").to_pylist()]),
                  "frames": torch.from_numpy(frames).half()},
        "test": {"instrument": torch.tensor([vocab.index(x) for x in test.column("instrument_str").to_pylist()]),
                 "pitch": torch.tensor(test.column("pitch").to_pylist()),
                 "velocity": torch.tensor([velocity_index(v) for v in test.column("velocity").to_pylist()]),
                 "wav": torch.from_numpy(np.round(wav * 32767).astype(np.int16))},
    }, out)
    print(f"{out}: {len(frames)} train embeddings {tuple(frames.shape[1:])}, {len(wav)} test notes")


def interpolated_notes(train: dict) -> dict:
    """``interpolate_pitches`` of every (instrument, velocity) of packed train notes, as tensors."""
    from sing_ray.train.embeddings import interpolate_pitches

    out = {"instrument": [], "pitch": [], "velocity": [], "frames": []}
    keys = sorted({(int(i), int(v)) for i, v in zip(train["instrument"], train["velocity"])})
    for inst, vel in keys:
        mine = ((train["instrument"] == inst) & (train["velocity"] == vel)).cpu()
        group = interpolate_pitches({"note_str": np.array([f"x-000-{vel:03d}"] * int(mine.sum()), dtype=object),
                                     "instrument": np.full(int(mine.sum()), inst), "velocity": np.full(int(mine.sum()), vel),
                                     "pitch": train["pitch"].cpu()[mine].numpy(),
                                     "embedding": train["frames"].cpu()[mine].float().numpy()})
        out["instrument"] += group["instrument"].tolist()
        out["pitch"] += group["pitch"].tolist()
        out["velocity"] += group["velocity"].tolist()
        out["frames"].append(torch.from_numpy(group["embedding"]))
    return {"instrument": torch.tensor(out["instrument"]), "pitch": torch.tensor(out["pitch"]),
            "velocity": torch.tensor(out["velocity"]), "frames": torch.cat(out["frames"])}


def one_curve(path: str, epochs: int, every: int, seed: int, interpolated: float = 0.0,
              overrides: tuple[str, ...] = ()) -> None:
    from sing_ray.checkpoint import load_model
    from sing_ray.config import apply_overrides, config_from_dict
    from sing_ray.dsp import log_power
    from sing_ray.losses import FrameLoss
    from sing_ray.models.autoencoder import HARMONIC_SCALE
    from sing_ray.models import build_sequence_generator

    torch.manual_seed(seed)
    dev = torch.device(os.environ.get("DEVICE", "cuda"))   # DEVICE=cpu: here, one thread
    if dev.type == "cpu":
        torch.set_num_threads(1)
    data = torch.load(path, weights_only=False)
    cfg = apply_overrides(config_from_dict(data["config"]), overrides)   # e.g. model.hidden_size=256
    phase = cfg.train.sequence
    schedule = dataclasses.replace(phase, epochs=epochs)      # the rate's cosine over this many epochs
    ae, _ = load_model(data["autoencoder"], map_location=dev)
    ae.eval()
    tr = {k: v.to(dev) for k, v in data["train"].items()}
    tr["frames"] = tr["frames"].float()
    te = {k: v.to(dev) for k, v in data["test"].items()}
    extra = {k: v.to(dev) for k, v in interpolated_notes(data["train"]).items()} if interpolated else None
    real = te["wav"].float() / 32767
    seq = build_sequence_generator(cfg.model, len(data["instruments"])).to(dev)
    opt = torch.optim.Adam(seq.parameters(), lr=phase.lr)
    # the pipeline's sequence loss: MSE, with train.sequence_loudness and train.sequence_audible
    # (AUDIBLE_DB=-80 moves the audible term's threshold, for a look)
    if os.environ.get("AUDIBLE_DB"):
        import sing_ray.losses
        sing_ray.losses.AUDIBLE_DB = float(os.environ["AUDIBLE_DB"])
    loss_fn = FrameLoss(cfg.train.sequence_loudness, HARMONIC_SCALE, cfg.train.sequence_audible)
    n, steps = len(tr["pitch"]), cfg.train.truncated_steps
    silence = (log_power(torch.zeros_like(real)) - log_power(real)).abs().mean().item()
    rms_real = 10 * torch.log10(real.square().mean(-1) + 1e-20)
    t0 = time.time()
    for epoch in range(1, epochs + 1):
        for g in opt.param_groups:
            g["lr"] = schedule.epoch_lr(epoch)
        seq.train()
        order = torch.randperm(n, device=dev)
        batches = [(tr, order[b:b + phase.batch_size]) for b in range(0, n - phase.batch_size + 1, phase.batch_size)]
        if extra is not None:       # a fresh draw each epoch, in batches of their own, shuffled among the rest
            batches += [(extra, torch.randint(0, len(extra["pitch"]), (phase.batch_size,), device=dev))
                        for _ in range(int(len(batches) * interpolated))]
            batches = [batches[i] for i in torch.randperm(len(batches)).tolist()]
        for src, idx in batches:
            target, hidden = src["frames"][idx], None
            for start in range(0, target.shape[-1], steps):
                length = min(steps, target.shape[-1] - start)
                opt.zero_grad(set_to_none=True)
                out, hidden = seq(src["instrument"][idx], src["pitch"][idx], src["velocity"][idx], start=start,
                                  length=length, hidden=hidden, return_hidden=True)
                loss = loss_fn(out, target[..., start:start + length])
                loss.backward()
                opt.step()
                hidden = tuple(h.detach() for h in hidden)
        if epoch % every == 0 or epoch == epochs:
            seq.eval()
            with torch.no_grad():
                frames = seq(te["instrument"], te["pitch"], te["velocity"])
                wav = torch.cat([ae.decode(frames[i:i + 16], te["pitch"][i:i + 16]) for i in range(0, len(frames), 16)])
                wav = wav[:, :real.shape[-1]]
                l1 = (log_power(wav) - log_power(real)).abs().mean().item()
                rms = 10 * torch.log10(wav.square().mean(-1) + 1e-20)
            d = (rms - rms_real).cpu().numpy()
            print(f"CURVE schedule={epochs} set={','.join(overrides) or '-'} seed={seed} "
                  f"interpolated={interpolated} epoch={epoch} gpu_s={time.time() - t0:.0f} "
                  f"spectral_l1={l1:.5f} silence={silence:.5f} ratio={l1 / silence:.3f} "
                  f"level={np.median(d):+.1f} abs_level={np.median(np.abs(d)):.1f} "
                  f"near_silent={int((rms < -60).sum())} under58={int((rms < -58).sum())} "
                  f"min_gap={float(d.min()):+.1f}", flush=True)
            if epoch == epochs:
                if os.environ.get("SAVE"):
                    torch.save(seq.state_dict(), os.environ["SAVE"])
                for i in np.argsort(rms.cpu().numpy())[:4]:
                    print(f"  quietest: {data['instruments'][int(te['instrument'][i])]}-{int(te['pitch'][i]):03d}-v{int(te['velocity'][i])} "
                          f"{float(rms[i]):.1f} dBFS, real {float(rms_real[i]):.1f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack")
    a.add_argument("run"), a.add_argument("dataset"), a.add_argument("out")
    c = sub.add_parser("curve")
    c.add_argument("path")
    c.add_argument("--epochs", default="80,160,320", help="schedules, one process each")
    c.add_argument("--every", type=int, default=40)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--interpolated", type=float, default=0.0,
                   help="notes drawn between the trained pitches per train note, each epoch")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE[;KEY=VALUE]",
                   help="a variant of the run's config (the LSTM's size, the phase's rate); repeat for more "
                        "variants, each run beside the others with every schedule")
    c.add_argument("--seeds", default=None, help="seeds, comma-separated (each variant and schedule once per seed)")
    c.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.cmd == "pack":
        return pack(args.run, args.dataset, args.out)
    if args.one is not None:
        sets = tuple(x for x in ";".join(args.set).split(";") if x)
        return one_curve(args.path, args.one, args.every, args.seed, args.interpolated, sets)
    import subprocess
    seeds = args.seeds.split(",") if args.seeds else [str(args.seed)]
    procs = [subprocess.Popen([sys.executable, __file__, "curve", args.path, "--every", str(args.every),
                               "--seed", seed, "--interpolated", str(args.interpolated), "--one", e]
                              + (["--set", v] if v else []))
             for e in args.epochs.split(",") for v in (args.set or [""]) for seed in seeds]
    sys.exit(max(p.wait() for p in procs))


if __name__ == "__main__":
    main()
