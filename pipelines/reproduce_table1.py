"""Reproduce the paper's Table 1: three training runs, five rows, beside the paper's figures.

    ray job submit --working-dir . -- python -m pipelines.reproduce_table1 \\
        --dataset /data/fluidr3.ds --preset small --set train.autoencoder.epochs=5

Runs ``wav`` (train.loss=wav), ``spectral`` and ``spectral_notime`` (model.time_dim=0);
the autoencoder rows are phase 1 of the first two. Every row is scored on the train and
test splits from its checkpoint. Writes OUT/table1.md and OUT/table1.json, logs them to
MLflow under one parent run, and prints the table.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from sing_ray.config import PRESETS, ConfigError
from sing_ray.errors import UserError
from sing_ray.runtime import init_ray, setup_logging


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m pipelines.reproduce_table1``."""
    from sing_ray import table1

    parser = argparse.ArgumentParser(prog="python -m pipelines.reproduce_table1",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dataset", required=True, metavar="DATASET", help="an ingested dataset folder or URI")
    parser.add_argument("--preset", default="table1", choices=PRESETS,
                        help="model and training preset of every run (table1: about an hour on 2 CPU cores, every row learning)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run (repeatable), e.g. train.finetune.epochs=5")
    parser.add_argument("--runs", default=",".join(table1.RUNS), metavar="LIST",
                        help=f"runs to train, of {','.join(table1.RUNS)} (rows of others print as dashes)")
    parser.add_argument("--out", default="table1", metavar="DIR", help="folder for the table and the runs")
    parser.add_argument("--name", default=None, metavar="NAME",
                        help="prefix of the training runs' names (default table1-<preset>-<time>); "
                             "the same NAME again resumes them, skipping finished phases")
    parser.add_argument("--max-train-notes", type=int, default=None, metavar="N",
                        help="for a row scored from its checkpoint (its phase reported no end-of-phase "
                             "scores): at most N train notes (a stable hash sample; default all)")
    parser.add_argument("--max-test-notes", type=int, default=None, metavar="N",
                        help="score at most N test notes per row (default all)")
    parser.add_argument("--tracking-uri", default=None, metavar="URI",
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--experiment", default="sing-ray-table1", help="MLflow experiment")
    parser.add_argument("--num-cpus", type=int, default=None, metavar="N",
                        help="CPUs of the local Ray started when not under `ray job submit` (default: all)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, start or join Ray, train the runs, print the table; returns the exit status."""
    from sing_ray import table1

    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, native_to_log=argv is None)   # no argv: this is the process's program
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    try:
        unknown = sorted(set(runs) - set(table1.RUNS))
        if unknown or not runs:
            raise UserError(f"--runs: unknown run(s) {', '.join(unknown) or '(none given)'}; "
                            f"expected some of {', '.join(table1.RUNS)}")
        started = init_ray(num_cpus=args.num_cpus)
        try:
            result = table1.reproduce_table1(
                args.dataset, preset=args.preset, overrides=args.overrides, out=args.out, runs=runs,
                name=args.name, max_train_notes=args.max_train_notes, max_test_notes=args.max_test_notes,
                tracking_uri=args.tracking_uri, experiment=args.experiment)
        finally:
            if started:
                import ray

                ray.shutdown()
    except (UserError, ConfigError) as err:
        print(f"pipelines.reproduce_table1: error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 2)
    print(table1.format_table(result["results"], result["meta"]))
    print(f"table: {result['paths']['markdown']} and {result['paths']['json']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
