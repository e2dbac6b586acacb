"""``sing-ray quickstart``: the whole pipeline at small scale on embedded defaults."""
from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's arguments."""
    from ..quickstart import SCALES

    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.description = (
        "Render an NSynth-layout dataset from the FluidR3 General MIDI SoundFont, ingest it, train "
        "SING's three phases (tracked in MLflow, model registered), and render a sample library with "
        "SFZ files (with the dataset's nearest-key and real notes beside them, A/B buttons on its page). "
        "Then score the model on held-out test notes (in tune, loudness against the real "
        "notes, spectral L1 against silence's), and write a spectrogram sheet, a demo WAV and a compare "
        "demo (each scale from the dataset's notes, then from the model) into the "
        "library, logged with the scores to the training run. Re-running resumes where it stopped.")
    parser.add_argument("--workdir", default="quickstart", metavar="DIR",
                        help="folder for the dataset, the runs and the library")
    parser.add_argument("--scale", default="default", choices=sorted(SCALES),
                        help="default: 910 notes, quick preset (7.5 to 10.5 minutes on 2 cores after set-up); smallest: 48 notes, 1 epoch (tests)")
    parser.add_argument("--run-name", default="quickstart", metavar="NAME",
                        help="MLflow parent run; the same name resumes it")
    parser.add_argument("--tracking-uri", default=None, metavar="URI",
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--workers", type=int, default=2, metavar="N",
                        help="Ray Train workers per phase and rendering actors")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="training config override, repeatable")
    parser.add_argument("--num-cpus", type=int, default=None, metavar="N",
                        help="CPUs of the local Ray started when not under `ray job submit` (default: all)")
    parser.add_argument("--no-progress", action="store_true", help="periodic log lines instead of bars")


def run(args: argparse.Namespace) -> int:
    """Run the chain; print where everything is, the held-out scores, and how to open the MLflow UI."""
    from ..evaluate import SHORT_LISTENER_ROWS, listener_summary
    from ..quickstart import DEMO_SCALE_NAME, run_quickstart
    from ..runtime import init_ray

    from .. import console

    console.set_progress(not getattr(args, "no_progress", False))
    started = init_ray(num_cpus=args.num_cpus)
    try:
        result = run_quickstart(args.workdir, args.scale, run_name=args.run_name,
                                tracking_uri=args.tracking_uri, workers=args.workers,
                                overrides=args.overrides, progress=console.progress_bars())
    finally:
        if started:
            import ray

            ray.shutdown()
    print()
    print(f"dataset:        {result.dataset}")
    print(f"MLflow run:     {result.run_id}" + (f"  (model {result.model_uri})" if result.model_uri else ""))
    files = result.render.files
    print(f"sample library: {result.library}  ({result.render.notes} notes; "
          f"{len(files.get('sfz', []))} instruments as .sfz and .dspreset, library.sf2; "
          f"audition every note: {result.library}/index.html)")
    compare = result.render.compare
    if compare is not None:
        print(f"A/B on the page: {compare.nearest} of {compare.notes} notes play the nearest key a sampler would "
              f"stretch, {compare.real} the real note, {compare.neither} neither  ({result.library}/compare/)")
    shown = result.showcase
    if shown is not None:
        demo = shown.demo
        unheard = (f"; pitches {', '.join(map(str, demo.unheard))} were not in the training data"
                   if demo.unheard else "")
        print(f"demo:           {demo.path}  ({len(demo.instruments)} instruments in turn, each playing "
              f"{DEMO_SCALE_NAME}, {demo.seconds_per_instrument:g} s apart; {demo.rms_db:.1f} dBFS RMS{unheard})")
        if shown.compare_demo is not None:
            c = shown.compare_demo
            which = (f"; pitches {', '.join(map(str, c.nearest_pitches))} from a nearest key"
                     if c.nearest_pitches else "")
            print(f"compare demo:   {c.path}  (each instrument plays the scale from the dataset's notes, then "
                  f"from the model, {c.seconds_per_instrument:g} s an instrument; {c.num_real} real notes, "
                  f"{c.num_nearest} nearest keys resampled{which}, {c.num_none} silent; {c.rms_db_dataset:.1f} "
                  f"against {c.rms_db_model:.1f} dBFS RMS)")
        if shown.sheet is not None:
            print(f"spectrograms:   {shown.sheet}  (real | generated | nearest key, held-out test notes)")
        if shown.logged:
            print(f"logged to the MLflow run: {', '.join(shown.logged)} and the held-out scores (heldout.*)")
        if shown.scores is not None:
            n = shown.scores["num_notes"]
            print(f"held-out test notes ({n} of {shown.split_size or n}), generated against real:")
            print(listener_summary(shown.scores, SHORT_LISTENER_ROWS))
        else:
            print("held-out test notes: none (the test split is empty)")
    print(f"open the MLflow UI: mlflow ui --backend-store-uri {result.tracking_uri} --host 127.0.0.1")
    return 0
