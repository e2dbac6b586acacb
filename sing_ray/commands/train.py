"""``sing-ray train``: SING's three phases on Ray Train, tracked in MLflow (see docs/training.md)."""
from __future__ import annotations

import argparse

from ..config import PHASES, PRESETS


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's arguments."""
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.description = (
        "Train SING on an ingested dataset: the autoencoder, the LSTM on the encoder's embeddings "
        "(truncated BPTT), then both end to end. Each phase is a Ray Train run over N workers; every "
        "epoch is validated, checkpointed and logged to MLflow (one parent run, one nested run per "
        "phase). Re-running with the same --run-name resumes an interrupted run. See docs/training.md.")
    parser.add_argument("--dataset", required=True, metavar="DATASET",
                        help="an ingested dataset folder or URI (sing-ray data ingest)")
    parser.add_argument("--preset", default="tiny", choices=PRESETS, help="model and training sizes")
    parser.add_argument("--config", default=None, metavar="YAML", help="a YAML file applied over the preset")
    parser.add_argument("--loss", default=None, metavar="EXPR",
                        help="training loss of the autoencoder and finetune phases, a weighted sum of "
                             "spectral, wav, mrstft, loudness: 'spectral' (the paper's), 'wav', "
                             "'mrstft + 0.5*spectral' (default: the preset's)")
    parser.add_argument("--time-dim", type=int, default=None, metavar="N",
                        help="width of the time lookup table; 0 removes it (the paper's ablation)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="Ray Train workers per phase (default: run.num_workers, 1)")
    parser.add_argument("--cpus-per-worker", type=int, default=None, metavar="N",
                        help="Ray CPUs and torch threads of each worker (default: run.cpus_per_worker, 1)")
    parser.add_argument("--gpu", action="store_true", help="one GPU per worker (DDP over NCCL)")
    parser.add_argument("--epochs", default=None, metavar="A,S,F",
                        help="epochs of the autoencoder, sequence and finetune phases")
    parser.add_argument("--steps", default=None, metavar="A,S,F",
                        help="step budgets (batches) of the autoencoder, sequence and finetune phases; 0 for "
                             "none. A phase stops at its epochs, steps or minutes, whichever comes first")
    parser.add_argument("--max-minutes", default=None, metavar="A,S,F",
                        help="wall-clock budgets in minutes of the three phases (decimals allowed); 0 for none")
    parser.add_argument("--phases", default=",".join(PHASES), metavar="LIST",
                        help="the phases to run, a prefix of autoencoder,sequence,finetune")
    parser.add_argument("--run-name", default=None, metavar="NAME",
                        help="name of the pipeline run; an existing name (or MLflow run id) resumes it")
    parser.add_argument("--tracking-uri", default=None, metavar="URI",
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--experiment", default=None, metavar="NAME", help="MLflow experiment (default: sing-ray)")
    parser.add_argument("--storage", default=None, metavar="DIR",
                        help="folder of the run folders: checkpoints, embeddings, models (default: ./runs)")
    parser.add_argument("--max-failures", type=int, default=None, metavar="N",
                        help="worker-group restarts Ray Train allows per phase (default: 2)")
    parser.add_argument("--no-register", action="store_true", help="do not register the final model")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, repeatable: --set train.autoencoder.lr=1e-4")
    parser.add_argument("--num-cpus", type=int, default=None, metavar="N",
                        help="CPUs of the local Ray started when not under `ray job submit` (default: all)")
    parser.add_argument("--no-progress", action="store_true",
                        help="one summary line per epoch, no progress bar")


def overrides_from_args(args: argparse.Namespace) -> list[str]:
    """The flags as ``--set`` strings, applied after the preset and before the user's ``--set``."""
    from ..errors import UserError

    out: list[str] = []
    if args.loss is not None:
        out.append(f"train.loss={args.loss}")
    if args.time_dim is not None:
        out.append(f"model.time_dim={args.time_dim}")
    if args.workers is not None:
        out.append(f"run.num_workers={args.workers}")
    if args.cpus_per_worker is not None:
        out.append(f"run.cpus_per_worker={args.cpus_per_worker}")
    if args.gpu:
        out.append("run.use_gpu=true")
    for flag, key, example, number in (("epochs", "epochs", "50,50,20", str.isdigit),
                                       ("steps", "steps", "20000,150000,40000", str.isdigit),
                                       ("max_minutes", "max_minutes", "60,240,120", _is_minutes)):
        text = getattr(args, flag, None)
        if text is None:
            continue
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != len(PHASES) or not all(number(p) for p in parts):
            what = "numbers of minutes >= 0" if flag == "max_minutes" else "counts"
            raise UserError(f"--{flag.replace('_', '-')} {text!r}: expected three {what} A,S,F such as {example}")
        out += [f"train.{phase}.{key}={n}" for phase, n in zip(PHASES, parts)]
    for flag, key in (("run_name", "run.run_name"), ("tracking_uri", "run.tracking_uri"),
                      ("experiment", "run.experiment"), ("storage", "run.storage_path"),
                      ("max_failures", "run.max_failures")):
        value = getattr(args, flag)
        if value is not None:
            out.append(f"{key}={value}")
    return out + list(args.overrides)


def _is_minutes(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return value >= 0 and value != float("inf")


def run(args: argparse.Namespace) -> int:
    """Check, train, print the model URI, the MLflow run and how to open the UI; returns 0."""
    from ..config import load_config
    from ..runtime import init_ray
    from ..train.pipeline import check_inputs, run_pipeline

    cfg = load_config(args.preset, args.config, overrides_from_args(args))
    phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    # Config and dataset errors before Ray starts: run_pipeline checks again, for library callers.
    check_inputs(cfg, args.dataset, phases)
    from .. import console

    console.set_progress(not getattr(args, "no_progress", False))
    started = init_ray(num_cpus=args.num_cpus)
    try:
        result = run_pipeline(cfg, args.dataset, phases=phases, register=not args.no_register)
    finally:
        if started:
            import ray

            ray.shutdown()
    for name, phase in result.phases.items():
        scores = ", ".join(f"{k} {phase.metrics[k]:.4g}" for k in
                           ("train_spectral_l1", "test_spectral_l1", "train_wav_mse", "test_wav_mse")
                           if k in phase.metrics)
        state = "skipped (finished earlier)" if phase.skipped else f"{phase.epochs} epoch(s)"
        if phase.stopped_by in ("steps", "max_minutes"):
            state += f", stopped by its {phase.stopped_by.replace('_', '-')} budget after {phase.steps} steps"
        print(f"{name:>11}: {state}; {scores}; {phase.checkpoint}")
    if result.model_uri:
        print(f"registered model: {result.model_uri}")
    print(f"MLflow run: {result.run_id} (name {result.run_name}, experiment {result.experiment_id})")
    print(f"run folder: {result.run_dir}")
    print(f"open the MLflow UI: {result.ui_command}")
    return 0
