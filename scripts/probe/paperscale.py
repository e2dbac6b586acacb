"""The three phases in one process on a GPU, at any preset's sizes, scored on held-out notes.

`pack` (here): a dataset's train and test notes as FLAC, small enough to carry to a GPU machine:

    PYTHONPATH=. python scripts/probe/paperscale.py pack DATASET OUT.pt

`train` (on the GPU): the pipeline's phases as its loops run them (``sing_ray.train.steps``,
each phase's loss, crops, truncated back-propagation, the rate's schedule), without Ray and
without validation: the autoencoder on the train notes, the sequence generator on the
encoder's frames of them (``train.sequence_interpolated`` is left out), then fine-tuning.
Every ``--every`` epochs of each phase, and at its end, it prints the held-out test notes'
scores as ``sing-ray evaluate`` computes them: pitch accuracy, median level difference,
spectral L1 against an all-zero output's, notes under -60 dBFS:

    PYTHONPATH=. python scripts/probe/paperscale.py train OUT.pt --preset paper [--set KEY=VALUE ...]

The autoencoder phase is scored on its reconstructions of the test notes, the sequence phase
on the LSTM's frames played by the phase-1 decoder, fine-tuning on SING's notes.
"""
from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch


def pack(dataset: str, out: str) -> None:
    import glob

    import pyarrow as pa
    import pyarrow.parquet as pq
    import soundfile as sf

    from sing_ray.data.dataset import decode_audio

    packed = {}
    for split in ("train", "test"):
        table = pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(f"{dataset}/notes/part-{split}-*.parquet"))])
        wav = decode_audio(table.column("audio"))
        flac = []
        for note in wav:
            buffer = io.BytesIO()
            sf.write(buffer, np.round(note * 32768).clip(-32768, 32767).astype(np.int16), 16000, format="FLAC")
            flac.append(buffer.getvalue())
        packed[split] = {"instrument_str": table.column("instrument_str").to_pylist(),
                         "pitch": table.column("pitch").to_pylist(), "velocity": table.column("velocity").to_pylist(),
                         # one byte tensor and the lengths: pickled bytes objects would take half as much again
                         "flac": torch.from_numpy(np.frombuffer(b"".join(flac), dtype=np.uint8).copy()),
                         "flac_lengths": [len(b) for b in flac]}
        print(f"{split}: {len(flac)} notes, {sum(map(len, flac)) / 2 ** 20:.1f} MiB of FLAC")
    torch.save(packed, out)


def _unpack(split: dict, vocab: list[str], device) -> dict:
    import soundfile as sf

    from sing_ray.nsynth import velocity_index

    blob, ends = split["flac"].numpy().tobytes(), np.cumsum([0] + split["flac_lengths"])
    wav = np.stack([sf.read(io.BytesIO(blob[a:b]), dtype="int16")[0] for a, b in zip(ends[:-1], ends[1:])])
    wav = wav.astype(np.float32) / 32768
    return {"instrument": torch.tensor([vocab.index(x) for x in split["instrument_str"]], device=device),
            "pitch": torch.tensor(split["pitch"], device=device),
            "velocity": torch.tensor([velocity_index(v) for v in split["velocity"]], device=device),
            "wav": torch.from_numpy(wav).to(device)}


def score(generated: torch.Tensor, test: dict, with_pitch: bool = True) -> str:
    """The held-out scores ``sing-ray evaluate`` prints, for ``generated`` (N, T) against the test notes."""
    from sing_ray.evaluate import cents_off, estimate_f0, rms_dbfs, summarize_group
    from sing_ray.losses import table1_metrics

    out, ref = generated.float().cpu(), test["wav"].cpu()
    notes = {k: v.numpy().astype(np.float64) for k, v in table1_metrics(out, ref).items()}
    notes["spectral_l1_silence"] = table1_metrics(torch.zeros_like(ref), ref)["spectral_l1"].numpy().astype(np.float64)
    notes["rms_db"], notes["rms_db_real"] = rms_dbfs(out), rms_dbfs(ref)
    pitches = test["pitch"].cpu().tolist()
    if with_pitch:
        f0 = np.array([estimate_f0(w, p) for w, p in zip(out.numpy(), pitches)])
        notes["cents"] = np.asarray(cents_off(f0, pitches), dtype=np.float64)
    s = summarize_group(notes)
    text = (f"spectral L1 {s['spectral_l1']:.4f} = {s['spectral_l1_vs_silence']:.2f} x silence's, "
            f"level {s['median_rms_db_diff']:+.1f} dB (|{s['median_abs_rms_db_diff']:.1f}|), "
            f"near-silent {s['num_near_silent']} (real {s['num_near_silent_real']}), "
            f"peak {float(out.abs().max()):.2g}")
    if with_pitch:
        text = f"in tune {100 * s['pitch_accuracy']:.1f} %, " + text
    return text


def _batches(n: int, size: int):
    order = torch.randperm(n)
    return [order[i:i + size] for i in range(0, n, size)]


def train(path: str, preset: str, overrides: list[str], every: int, device: str) -> None:
    from sing_ray.config import load_config
    from sing_ray.losses import FrameLoss, build_loss
    from sing_ray.models import build_autoencoder, build_sequence_generator, build_sing
    from sing_ray.models.autoencoder import HARMONIC_SCALE
    from sing_ray.train.steps import autoencoder_step, finetune_step, sequence_step

    torch.manual_seed(0)
    if device == "cpu":
        torch.set_num_threads(1)
    cfg = load_config(preset, overrides=overrides)
    m, t = cfg.model, cfg.train
    data = torch.load(path, weights_only=False)
    vocab = sorted(set(data["train"]["instrument_str"]))
    tr, te = _unpack(data["train"], vocab, device), _unpack(data["test"], vocab, device)
    n = len(tr["pitch"])
    print(f"{preset} {' '.join(overrides)}: {n} train, {len(te['pitch'])} test notes on {device}", flush=True)
    started = time.time()

    def report(phase: str, epoch: int, generate) -> None:
        with torch.no_grad():
            wav = torch.cat([generate(i) for i in range(0, len(te["pitch"]), 16)])[:, :te["wav"].shape[-1]]
        last = epoch == t.phase(phase).epochs
        print(f"{phase} epoch {epoch} ({time.time() - started:.0f} s): {score(wav, te, with_pitch=last)}", flush=True)

    def window(i):
        return slice(i, i + 16)

    def fit(phase: str, model, step, generate) -> None:
        """``phase``'s epochs: Adam on its schedule, ``step(model, opt, idx)`` per batch, and the
        held-out notes ``generate(i)`` makes scored every ``every`` epochs and at the end."""
        p = t.phase(phase)
        opt = torch.optim.Adam(model.parameters(), lr=p.lr)
        for epoch in range(1, p.epochs + 1):
            for g in opt.param_groups:
                g["lr"] = p.epoch_lr(epoch)
            model.train()
            for idx in _batches(n, p.batch_size):
                step(model, opt, idx.to(device))
            if epoch % every == 0 or epoch == p.epochs:
                model.eval()
                report(phase, epoch, generate)
        model.eval()

    ae = build_autoencoder(m).to(device)
    loss_fn = build_loss(t, phase="autoencoder")
    fit("autoencoder", ae,
        lambda model, opt, idx: autoencoder_step(model, opt, tr["wav"][idx], loss_fn, crop=t.autoencoder.crop,
                                                 pitch=tr["pitch"][idx]),
        lambda i: ae(te["wav"][window(i)], te["pitch"][window(i)]))
    with torch.no_grad():
        frames = torch.cat([ae.encode(tr["wav"][window(i)], tr["pitch"][window(i)]) for i in range(0, n, 16)])

    seq = build_sequence_generator(m, num_instruments=len(vocab)).to(device)
    frame_loss = FrameLoss(t.sequence_loudness, HARMONIC_SCALE, t.sequence_audible)
    fit("sequence", seq,
        lambda model, opt, idx: sequence_step(model, opt, tr["instrument"][idx], tr["pitch"][idx],
                                              tr["velocity"][idx], frames[idx], t.truncated_steps, frame_loss),
        lambda i: ae.decode(seq(te["instrument"][window(i)], te["pitch"][window(i)], te["velocity"][window(i)]),
                            te["pitch"][window(i)]))

    sing = build_sing(m, num_instruments=len(vocab)).to(device)
    sing.sequence.load_state_dict(seq.state_dict())
    sing.decoder.load_state_dict(ae.decoder.state_dict())
    finetune_loss = build_loss(t, phase="finetune")
    fit("finetune", sing,
        lambda model, opt, idx: finetune_step(model, opt, tr["instrument"][idx], tr["pitch"][idx],
                                              tr["velocity"][idx], tr["wav"][idx], finetune_loss,
                                              crop=t.finetune.crop),
        lambda i: sing(te["instrument"][window(i)], te["pitch"][window(i)], te["velocity"][window(i)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("dataset"), p.add_argument("out")
    p = sub.add_parser("train")
    p.add_argument("path")
    p.add_argument("--preset", default="paper")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--every", type=int, default=10, help="score the held-out notes every N epochs of each phase")
    p.add_argument("--device", default="cuda")
    args = parser.parse_args()
    if args.cmd == "pack":
        pack(args.dataset, args.out)
    else:
        train(args.path, args.preset, args.set, args.every, args.device)


if __name__ == "__main__":
    main()
