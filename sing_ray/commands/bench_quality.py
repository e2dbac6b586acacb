"""``sing-ray bench quality``: time to quality of a training run, from the models it logged every epoch.

A training run logs each epoch's model to MLflow (``checkpoints/epoch-NNN``) and
the epoch's seconds (``epoch_seconds``). This benchmark walks a finished run's
sequence and fine-tuning phases: every ``--every`` epochs (and each phase's last)
it builds the SING the run had then (phase 1's decoder with the LSTM of that
epoch, then the fine-tuned SING), renders held-out notes of the dataset and
scores them as ``sing-ray evaluate`` does (share within 50 cents of the MIDI
pitch, median level against the real notes, spectral L1 against an all-zero
output's, near-silent notes). It prints the curve against minutes of training
(every phase's epochs summed, the autoencoder's included; not the scoring) and
the minutes until the held-out notes first reach each ``--targets`` share in tune,
or that they never did and the best they reached; and the same for the share in
tune and audible, the notes in tune that are not near-silent (RMS at or above -60
dBFS): the pitch tracker follows a note's pitch however quiet it is, so a model
still near-silent early in its sequence phase already counts as in tune. Each point
also records the timbre distances (median lts_db, lts_loud_db and envelope_db in dB),
and the curve gives the time to timbre: the minutes until the held-out notes' median
lts_db first falls to each ``--lts-targets`` dB, beside the nearest-key sampler's
median lts_db on the same notes (the training note of the same instrument and
velocity at the nearest other pitch, resampled to the note's pitch).
"""
from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path
from typing import Sequence


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's arguments."""
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.description = __doc__.split("\n\n", 1)[1].replace("``", "")
    parser.add_argument("--run", required=True, metavar="NAME|ID",
                        help="the training run: its --run-name (the latest of that name) or its MLflow run id")
    parser.add_argument("--dataset", required=True, metavar="DIR", help="the ingested dataset it was trained on")
    parser.add_argument("--split", default="test", help="the held-out split scored")
    parser.add_argument("--max-notes", type=int, default=40, metavar="N", help="held-out notes scored per point")
    parser.add_argument("--every", type=int, default=4, metavar="E", help="score every E epochs of each phase")
    parser.add_argument("--targets", default="0.5,0.8", metavar="SHARE,...",
                        help="shares in tune (and in tune and audible) to time")
    parser.add_argument("--lts-targets", default="6,5,4.5,3", metavar="DB,...",
                        help="median long-term spectrum distances (lts_db, dB) to time")
    parser.add_argument("--tracking-uri", default=None, metavar="URI",
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--num-cpus", type=int, default=None, metavar="N",
                        help="CPUs of the local Ray started to read the dataset when not under `ray job submit`")


def find_phase_runs(client, run: str) -> tuple[object, dict[str, object]]:
    """The run (by id, or the latest top-level run of that name) and its phase runs by phase name.

    Raises:
        UserError when no such run exists or it has no sequence phase.
    """
    from ..errors import UserError
    from ..tracking import find_run, phase_runs

    parent = find_run(client, run)
    if parent is None:
        raise UserError(f"--run {run}: no training run of that name or id in this tracking store")
    phases = phase_runs(client, parent)
    if "sequence" not in phases or "autoencoder" not in phases:
        raise UserError(f"--run {run}: it has no sequence phase yet (phases: {', '.join(sorted(phases)) or 'none'})")
    return parent, phases


def _epoch_seconds(client, run) -> dict[int, float]:
    from ..tracking import EPOCH_SECONDS_METRIC

    return {int(m.step): float(m.value) for m in client.get_metric_history(run.info.run_id, EPOCH_SECONDS_METRIC)}


def _model_bytes(client, run, epoch: int, tmp: Path) -> bytes:
    from ..tracking import epoch_checkpoint_artifact

    path = client.download_artifacts(run.info.run_id, f"{epoch_checkpoint_artifact(epoch)}/model.pt", str(tmp))
    return Path(path).read_bytes()


def sing_at(sequence_ckpt: bytes, autoencoder_ckpt: bytes) -> bytes:
    """The SING of a run before fine-tuning: phase 1's decoder with a sequence checkpoint's LSTM, assembled
    as the finetune phase assembles it (:func:`sing_ray.checkpoint.sing_from_phases`), as checkpoint bytes."""
    import torch

    from ..checkpoint import load_checkpoint, make_checkpoint, sing_from_phases
    from ..config import config_from_dict

    seq = load_checkpoint(sequence_ckpt)
    model = sing_from_phases(seq, autoencoder_ckpt)
    buffer = io.BytesIO()
    torch.save(make_checkpoint(model, config=config_from_dict(seq["config"]), phase="sequence", epoch=seq["epoch"],
                               extra={"instruments": list(seq["extra"]["instruments"])}), buffer)
    return buffer.getvalue()


def _points(epochs: list[int], every: int) -> list[int]:
    last = max(epochs)
    return sorted({e for e in epochs if e % every == 0} | {last})


def run(args: argparse.Namespace) -> int:
    """Score the run's epochs and print the curve; returns 0."""
    import mlflow
    import ray

    from ..errors import UserError
    from ..runtime import init_ray
    from ..tracking import resolve_tracking_uri

    try:
        targets = sorted(float(t) for t in args.targets.split(",") if t.strip())
    except ValueError:
        raise UserError(f"--targets {args.targets!r}: shares in tune, e.g. 0.5,0.8") from None
    try:
        lts_targets = sorted((float(t) for t in args.lts_targets.split(",") if t.strip()), reverse=True)
    except ValueError:
        raise UserError(f"--lts-targets {args.lts_targets!r}: distances in dB, e.g. 6,5,4.5,3") from None
    if not all(t > 0 for t in lts_targets):
        raise UserError(f"--lts-targets {args.lts_targets!r}: distances in dB must be > 0")
    if args.every < 1 or args.max_notes < 1 or not targets or not all(0 < t <= 1 for t in targets):
        raise UserError("--every and --max-notes must be >= 1, and --targets shares between 0 and 1")
    client = mlflow.MlflowClient(resolve_tracking_uri(args.tracking_uri))
    parent, phases = find_phase_runs(client, args.run)
    started = init_ray(num_cpus=args.num_cpus)
    try:
        rows = score_run(client, parent, phases, args)
    finally:
        if started:
            ray.shutdown()
    print_curve(rows, targets, args, lts_targets)
    return 0


def score_run(client, parent, phases: dict, args: argparse.Namespace) -> list[dict]:
    """Score the run's SING every ``args.every`` epochs; returns one row per point, in training order."""
    import numpy as np
    import torch

    from ..errors import UserError
    from ..evaluate import audible_in_tune, score_split_here, summarize_group
    from ..tracking import NOTES_PER_SECOND_METRIC

    torch.set_num_threads(1)
    seconds = {name: _epoch_seconds(client, r) for name, r in phases.items()}
    for name in ("autoencoder", "sequence"):
        if not seconds.get(name):
            raise UserError(f"--run {args.run}: its {name} phase logged no finished epoch")
    elapsed, clock = {}, 0.0                       # (phase, epoch) -> minutes of training at its end
    for name in ("autoencoder", "sequence", "finetune"):
        for epoch in sorted(seconds.get(name, {})):
            clock += seconds[name][epoch]
            elapsed[(name, epoch)] = clock / 60
    rate = {name: float(np.median([m.value for m in client.get_metric_history(r.info.run_id, NOTES_PER_SECOND_METRIC)]
                                  or [0.0])) for name, r in phases.items()}
    print(f"run {parent.info.run_name} ({parent.info.run_id}): "
          + ", ".join(f"{n} {len(seconds.get(n, {}))} epochs, {sum(seconds.get(n, {}).values()) / 60:.1f} min, "
                      f"{rate.get(n, 0):.0f} notes/s" for n in ("autoencoder", "sequence", "finetune") if n in phases)
          + " (minutes: the epochs' own, without Ray's start-up or scoring)", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ae_epochs = sorted(seconds["autoencoder"])
        autoencoder = _model_bytes(client, phases["autoencoder"], ae_epochs[-1], Path(tmp))
        for name in ("sequence", "finetune"):
            if name not in phases:
                continue
            for epoch in _points(sorted(seconds[name]), args.every):
                ckpt = _model_bytes(client, phases[name], epoch, Path(tmp))
                if name == "sequence":
                    ckpt = sing_at(ckpt, autoencoder)
                # The real notes and the nearest key are the same at every point: scored once.
                notes, _, _ = score_split_here(ckpt, args.dataset, args.split, max_notes=args.max_notes,
                                               with_reference_pitch=not rows, nearest_key=not rows)
                s = summarize_group(notes)
                s["audible_in_tune"] = audible_in_tune(notes)
                rows.append({"phase": name, "epoch": epoch, "minutes": elapsed[(name, epoch)], **s})
                print(f"  {name} epoch {epoch:3d}: {elapsed[(name, epoch)]:5.1f} min, "
                      f"{100 * s['pitch_accuracy']:4.0f} % in tune ({100 * s['audible_in_tune']:.0f} % in tune and "
                      f"audible), level {s['median_rms_db_diff']:+5.1f} dB, "
                      f"spectral L1 {s['spectral_l1_vs_silence']:.2f} x silence's, {s['num_near_silent']} near-silent, "
                      f"lts {s['median_lts_db']:.1f} dB, envelope {s['median_envelope_db']:.1f} dB",
                      flush=True)
    return rows


def print_curve(rows: list[dict], targets: list[float], args: argparse.Namespace,
                lts_targets: Sequence[float] = ()) -> None:
    """The table of the curve, then the minutes to each target share in tune, and in tune and
    audible, then to each median lts_db of ``lts_targets`` (dB) (time to timbre)."""
    timbre = all("median_lts_db" in r for r in rows)
    print()
    print(f"held-out {args.split} notes: {rows[0]['num_notes']} of {args.dataset}")
    print("| phase | epoch | minutes of training | in tune | in tune and audible | level vs real "
          "| spectral L1 / silence's | near-silent |" + (" lts dB | loud-band lts dB | envelope dB |" if timbre else ""))
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: | ---: | ---: |" if timbre else ""))
    for r in rows:
        print(f"| {r['phase']} | {r['epoch']} | {r['minutes']:.1f} | {100 * r['pitch_accuracy']:.0f} % | "
              f"{100 * r['audible_in_tune']:.0f} % | {r['median_rms_db_diff']:+.1f} dB | "
              f"{r['spectral_l1_vs_silence']:.2f} | {r['num_near_silent']} |"
              + (f" {r['median_lts_db']:.1f} | {r['median_lts_loud_db']:.1f} | {r['median_envelope_db']:.1f} |"
                 if timbre else ""))
    for target in targets:
        for key, what in (("pitch_accuracy", "in tune"), ("audible_in_tune", "in tune and audible")):
            hit = next((r for r in rows if r[key] >= target), None)
            if hit:
                print(f"{100 * target:.0f} % {what}: after {hit['minutes']:.1f} min of training "
                      f"({hit['phase']} epoch {hit['epoch']})")
            else:
                best = max(rows, key=lambda r: r[key])
                print(f"{100 * target:.0f} % {what}: not reached; best {100 * best[key]:.0f} % "
                      f"after {best['minutes']:.1f} min ({best['phase']} epoch {best['epoch']})")
    if not (timbre and lts_targets):
        return
    first = rows[0]
    if first.get("nk_median_lts_db") is not None:
        print(f"the nearest key (sampler) on these notes: median lts_db {first['nk_median_lts_db']:.1f} dB, "
              f"envelope {first['nk_median_envelope_db']:.1f} dB"
              + (f" ({first['num_nearest_key_missing']} notes have none)" if first.get("num_nearest_key_missing")
                 else "") + f"; silence: {first['median_lts_db_silence']:.1f} dB")
    for target in lts_targets:
        hit = next((r for r in rows if r["median_lts_db"] <= target), None)
        if hit:
            print(f"median lts_db {target:g} dB: after {hit['minutes']:.1f} min of training "
                  f"({hit['phase']} epoch {hit['epoch']})")
        else:
            best = min(rows, key=lambda r: r["median_lts_db"])
            print(f"median lts_db {target:g} dB: not reached; best {best['median_lts_db']:.1f} dB "
                  f"after {best['minutes']:.1f} min ({best['phase']} epoch {best['epoch']})")
