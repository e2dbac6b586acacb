"""``sing-ray evaluate``: score a model on a dataset split, write a report, log it to MLflow."""
from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's arguments."""
    from ..evaluate import DEFAULT_TRAIN_NOTES

    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.description = (
        "Generate every note of a dataset split with MODEL and score it against the real note: "
        "wav MSE and spectral L1 (the paper's Table 1), a multi-resolution STFT distance, pitch "
        "accuracy (pyin f0 within 50 cents of the MIDI pitch) and a Fréchet distance over fixed "
        "log-mel statistics (not FAD-VGGish); RMS loudness in dBFS beside the real note's, near-silent "
        "notes (below -60 dBFS) counted, and spectral L1 beside that of an all-zero output (a model "
        "that scores like silence has learnt nothing); timbre distances (long-term spectrum and envelope, in dB); "
        "every figure beside the nearest-key sampler's (the training note of the same instrument and velocity at "
        "the nearest other pitch, resampled to the note's pitch); overall, per instrument family and per pitch "
        "octave, and a sample of training notes scored beside the held-out ones. "
        "Writes OUT/evaluation.md, OUT/evaluation.json, OUT/evaluation_notes.csv and PNG figures, "
        "and logs them to MLflow. An Autoencoder checkpoint is scored on its reconstructions. "
        "See docs/evaluation.md.")
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="a checkpoint file or an MLflow model URI (models:/sing/3, runs:/<id>/sing)")
    parser.add_argument("--dataset", required=True, metavar="DATASET",
                        help="an ingested dataset folder or URI (sing-ray data ingest)")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"),
                        help="the split to score (the paper's held-out pairs are in test)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="report folder (default: evaluation/<model>-<split>)")
    parser.add_argument("--max-notes", type=int, default=None, metavar="N",
                        help="score a stable hash sample of at most N notes (default: the whole split)")
    parser.add_argument("--tracking-uri", default=None, metavar="URI",
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--experiment", default="sing-ray", help="MLflow experiment of the evaluation run")
    parser.add_argument("--no-mlflow", action="store_true", help="write the report only, log nothing")
    parser.add_argument("--training-run", default=None, metavar="RUN_ID",
                        help="MLflow run of the model's training, for the training curves "
                             "(found from a models:/ or runs:/ MODEL when not given)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N", help="notes per model call")
    parser.add_argument("--num-workers", type=int, default=1, metavar="N",
                        help="Ray actors generating and scoring, each with one copy of the model")
    parser.add_argument("--gpu", action="store_true", help="one GPU per actor")
    parser.add_argument("--no-pitch", action="store_true",
                        help="skip pitch tracking (the slowest metric: 0.3-1.3 s per note and side)")
    parser.add_argument("--no-figures", action="store_true", help="draw no figures")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --max-notes and --train-notes samples")
    parser.add_argument("--train-notes", type=int, default=None, metavar="N",
                        help="also score a stable sample of N training notes beside the held-out ones "
                             f"(default: {DEFAULT_TRAIN_NOTES}, at most as many as the notes scored; 0: none)")
    parser.add_argument("--no-nearest-key", action="store_true",
                        help="skip the nearest-key sampler baseline (it reads the training notes it stretches "
                             "and tracks their pitch too)")
    parser.add_argument("--num-cpus", type=int, default=None, metavar="N",
                        help="CPUs of the local Ray started when not under `ray job submit` (default: all)")


def run(args: argparse.Namespace) -> int:
    """Evaluate, print where the report went and the overall numbers; returns 0."""
    import ray

    from ..errors import UserError
    from ..evaluate import evaluate_model, fit_table, listener_summary, markdown_table
    from ..runtime import init_ray

    if args.max_notes is not None and args.max_notes < 1:
        raise UserError(f"--max-notes must be >= 1, got {args.max_notes}")
    if args.batch_size < 1 or args.num_workers < 1:
        raise UserError("--batch-size and --num-workers must be >= 1")
    if args.train_notes is not None and args.train_notes < 0:
        raise UserError(f"--train-notes must be >= 0, got {args.train_notes}")
    started = init_ray(num_cpus=args.num_cpus)
    try:
        result = evaluate_model(
            args.model, args.dataset, args.split, out=args.out, max_notes=args.max_notes, seed=args.seed,
            batch_size=args.batch_size, num_workers=args.num_workers, use_gpu=args.gpu,
            with_pitch=not args.no_pitch, with_reference_pitch=not args.no_pitch,
            figures=not args.no_figures, tracking_uri=args.tracking_uri, experiment=args.experiment,
            log_to_mlflow=not args.no_mlflow, training_run=args.training_run,
            nearest_key=not args.no_nearest_key, train_notes=args.train_notes)
    finally:
        if started:
            ray.shutdown()
    overall = result.report["summary"]["overall"]
    print(listener_summary(overall))
    print()
    print(markdown_table({"all": overall}, args.split))
    if result.report.get("train_notes"):
        print()
        print(fit_table(result.report))
    print(f"report: {result.paths['markdown']}")
    if result.run_id:
        print(f"MLflow run: {result.run_id}")
    return 0
