"""``sing-ray render``: render an instrument x pitch x velocity grid to a sample library."""
from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's arguments."""
    from ..grid import PITCHES_HELP, PITCHES_METAVAR, VELOCITIES_HELP, VELOCITIES_METAVAR
    from ..library import DEFAULT_FORMATS
    from ..render import DEFAULT_PITCHES, DTYPES, FORMATS

    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.description = (
        "Generate every note of a grid with MODEL on a Ray Data actor pool and write a sample library: "
        "OUT/<instrument>/<instrument>-<pitch>-<velocity>.wav, OUT/manifest.parquet, sampler files "
        "(SFZ and Decent Sampler per instrument, one SoundFont for the library, or one per family past "
        "10,922 notes) with the sustain loops and releases measured on each note, and OUT/index.html, a "
        "page to search the instruments and audition every note. OUT is a folder or an object-store URI "
        "(s3://...). A re-run renders only the notes missing and rewrites only the sampler files whose "
        "samples changed; each stage's notes per second are printed at the end. See docs/render.md.")
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="a checkpoint file or an MLflow model URI (models:/sing/3, runs:/<id>/sing)")
    parser.add_argument("--out", required=True, metavar="URI", help="library folder or URI (s3://bucket/prefix)")
    parser.add_argument("--instruments", default=None, metavar="all|NAME,...",
                        help="instruments to render (default: all, or none when --mix is given)")
    parser.add_argument("--share", type=float, default=None, metavar="F",
                        help="render this fraction (0-1] of the instruments, spread evenly over their order (0.1: "
                             "every 10th); the same ones every run, so a re-run with a larger share adds to the "
                             "library")
    parser.add_argument("--instrument-info", default=None, metavar="FILE",
                        help="JSON of the instruments' labels for the page's search and filters (SoundFont, bank, "
                             "program, preset, family, source): {instrument: {...}}, a list naming each "
                             "instrument_str (the SoundFont corpus's corpus.json as it is), or an NSynth "
                             "examples.json; kept in OUT/instruments.json")
    parser.add_argument("--pitches", default=DEFAULT_PITCHES, metavar=PITCHES_METAVAR, help=PITCHES_HELP)
    parser.add_argument("--velocities", default="all", metavar=VELOCITIES_METAVAR, help=VELOCITIES_HELP)
    parser.add_argument("--mix", action="append", default=[], metavar="[NAME=]INST:W,INST:W",
                        help="render a timbre mix of instrument embeddings as a new instrument "
                             "(repeatable; named <families>_mix_synthetic_<NNN> unless NAME= is given)")
    parser.add_argument("--format", default="wav", choices=sorted(FORMATS), help="audio file format of the samples")
    parser.add_argument("--formats", default=",".join(DEFAULT_FORMATS), metavar="NAME,...",
                        help="sampler files to write: sfz (<instrument>.sfz), dspreset (<instrument>.dspreset, "
                             "Decent Sampler), sf2 (library.sf2, one preset per instrument; past one SoundFont's "
                             "10,922 notes, library-<family>.sf2 per family)")
    parser.add_argument("--compare-dataset", default=None, metavar="DIR",
                        help="the ingested dataset the model was trained on: write, beside each note, what the "
                             "nearest-key sampler plays (its nearest other training pitch, resampled) and the real "
                             "note where the dataset holds it, under OUT/compare/ (never in the sampler files), and "
                             "give the page A/B buttons (model / nearest key / real)")
    parser.add_argument("--batch-size", type=int, default=32, metavar="N", help="notes per model call")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="actors holding the model (default: one per GPU with --gpu, else one per --threads CPUs)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="torch threads (and Ray CPUs) per CPU actor; single-threaded actors render fastest")
    parser.add_argument("--gpu", action="store_true", help="one GPU per actor")
    parser.add_argument("--dtype", default="float32", choices=DTYPES,
                        help="precision of the model's products (bfloat16: AMX/AVX512-BF16 CPUs, GPUs)")
    parser.add_argument("--tracking-uri", default=None, metavar="URI",
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--num-cpus", type=int, default=None, metavar="N",
                        help="CPUs of the local Ray started when not under `ray job submit` (default: all)")


def run(args: argparse.Namespace) -> int:
    """Check the inputs, render, print the summary; returns 0."""
    import ray

    from ..errors import UserError
    from ..render import plan_render, render_library
    from ..runtime import init_ray

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    # Every input is checked (model, names, grid, output) before Ray starts or any note renders.
    plan = plan_render(args.model, args.out, instruments=args.instruments, pitches=args.pitches,
                       velocities=args.velocities, fmt=args.format, mixes=args.mix,
                       tracking_uri=args.tracking_uri, formats=args.formats,
                       compare_dataset=args.compare_dataset, share=args.share,
                       instrument_info=args.instrument_info)
    started = init_ray(num_cpus=args.num_cpus)
    try:
        summary = render_library(plan, batch_size=args.batch_size, workers=args.workers, use_gpu=args.gpu,
                                 dtype=args.dtype, threads=args.threads)
    finally:
        if started:
            ray.shutdown()
    print(summary.describe())
    print(summary.describe_stages())
    if summary.compare is not None:
        print(summary.compare.describe())
    for kind, paths in summary.files.items():
        if len(paths) == 1:
            print(f"{kind}: {paths[0]}")
        elif paths:
            # One per instrument: where they are, not a line each.
            folder, ext = paths[0].rsplit("/", 1)[0], paths[0].rsplit(".", 1)[-1]
            print(f"{kind}: {len(paths)} files, {folder}/*.{ext}")
    return 0
