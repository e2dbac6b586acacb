"""``sing-ray bench ingest``: ingest throughput of sing-ray against a plain single-process loop."""
from __future__ import annotations

import argparse

from ..data.bench import DEFAULT_NUM_NOTES, DEFAULT_REPEATS
from ..data.bench_codecs import DEFAULT_CODEC_NOTES
from ..data.ingest import DEFAULT_ROWS_PER_SHARD


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's arguments."""
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.description = (
        "Ingest one NSynth-layout folder twice in one run: with a plain single-process loop (read "
        "and check every WAV with soundfile, write the same Parquet shards with pyarrow) and with "
        "sing-ray's Ray Data ingest. Prints notes/s for both and their ratio, the peak RSS of the driver "
        "and of the largest Ray worker, and checks that both wrote byte-identical shards. Without "
        "--source, a synthetic folder is written first. With --encodings, compares the audio "
        "column's encodings (pcm, zstd, flac) on ingested datasets instead: bytes per note, write "
        "and read cost per note, side by side.")
    parser.add_argument("--source", default=None, metavar="DIR",
                        help="NSynth-layout folder to ingest (default: a synthetic one)")
    parser.add_argument("--num-notes", "--notes", type=int, default=DEFAULT_NUM_NOTES, metavar="N",
                        help="notes of the synthetic folder (128 kB of WAV each, written twice more "
                             "by the two ingests: 10000 notes need about 4 GB of disk)")
    parser.add_argument("--distinct-instruments", type=int, default=None, metavar="K",
                        help="write the synthetic WAVs of K instruments (440 notes each) and hard-link "
                             "the others' to them: every note is still a file to list, read and check, "
                             "but NSynth's size fits on a small disk (repeated files come from the page "
                             "cache, so reads are cheaper than distinct files' would be)")
    parser.add_argument("--audio", choices=("pcm", "zstd", "flac"), default="pcm",
                        help="the audio column's encoding, the same on both sides (flac: about 0.4 x "
                             "pcm's disk, see docs/ingest.md)")
    parser.add_argument("--rows-per-shard", type=int, default=DEFAULT_ROWS_PER_SHARD, metavar="N",
                        help="notes per Parquet file, for both")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, metavar="N",
                        help="timed ingests per side, alternating; the figures are medians")
    parser.add_argument("--work-dir", default=None, metavar="DIR",
                        help="where the outputs (and the synthetic folder) go (default: a temporary "
                             "folder, removed at the end)")
    parser.add_argument("--control", action="store_true",
                        help="an A/A run: time the plain loop on both sides, to see how far this "
                             "machine's noise alone moves the ratio")
    parser.add_argument("--num-cpus", type=int, default=None, metavar="N",
                        help="CPUs of the local Ray (default: all)")
    parser.add_argument("--encodings", nargs="+", default=None, metavar="DATASET",
                        help="instead of the ingest race: for each ingested DATASET, write and read "
                             "the same notes as pcm, zstd and flac, and print bytes per note and "
                             "costs beside pcm's")
    parser.add_argument("--codec-notes", type=int, default=DEFAULT_CODEC_NOTES, metavar="N",
                        help="with --encodings: notes taken from each dataset")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its figures."""
    from ..data.bench import run_bench, start_ray
    from ..errors import UserError

    if args.encodings:
        from ..data.bench_codecs import bench_codecs, format_codecs

        if args.codec_notes < 1:
            raise UserError(f"--codec-notes must be positive, got {args.codec_notes}")
        ok = True
        for dataset in args.encodings:
            figures = bench_codecs(dataset, args.codec_notes, repeats=args.repeats)
            ok &= all(f.identical for f in figures)
            print(format_codecs(dataset, figures))
        return 0 if ok else 1
    if args.distinct_instruments is not None and args.distinct_instruments < 1:
        raise UserError(f"--distinct-instruments must be positive, got {args.distinct_instruments}")
    if args.source is None and args.num_notes < 1:
        raise UserError(f"--num-notes must be positive, got {args.num_notes}")
    if args.repeats < 1:
        raise UserError(f"--repeats must be positive, got {args.repeats}")
    started_ray = start_ray(num_cpus=args.num_cpus)
    try:
        result = run_bench(source=args.source, num_notes=args.num_notes,
                           rows_per_shard=args.rows_per_shard, work_dir=args.work_dir,
                           repeats=args.repeats, control=args.control,
                           distinct_instruments=args.distinct_instruments, audio=args.audio)
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    print(result.format())
    return 0 if result.identical_shards else 1
