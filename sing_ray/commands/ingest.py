"""``sing-ray data ingest``: validate an NSynth-layout folder and write a Parquet dataset."""
from __future__ import annotations

import argparse

from .. import console
from ..data.codec import AUDIO_CHOICES, DEFAULT_AUDIO
from ..data.ingest import DEFAULT_ROWS_PER_SHARD, ingest


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's arguments."""
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.description = (
        "Read SOURCE/examples.json and SOURCE/audio/<note_str>.wav (NSynth's layout), check every "
        "note (metadata, and a mono 16 kHz 16-bit WAV of 64000 frames), and write DATASET/notes/"
        "part-<split>-NNNNN.parquet, DATASET/rejects.parquet, DATASET/manifest.json and "
        "DATASET/_SUCCESS. The split (train/valid/test, 80/10/10) keeps every velocity of one "
        "(instrument, pitch) pair together. See docs/ingest.md.")
    parser.add_argument("--source", required=True, metavar="DIR",
                        help="NSynth-layout folder (a local path or a URI such as s3://bucket/x)")
    parser.add_argument("--out", required=True, metavar="DATASET",
                        help="dataset folder to write (local path or URI)")
    parser.add_argument("--rows-per-shard", type=int, default=DEFAULT_ROWS_PER_SHARD, metavar="N",
                        help="notes per Parquet file (each note is 128 kB of audio)")
    parser.add_argument("--audio", choices=sorted(AUDIO_CHOICES), default=DEFAULT_AUDIO,
                        help="how each note's samples are stored: pcm (raw int16, 128 kB a note), zstd "
                             "(raw int16 in a zstd-compressed Parquet column) or flac (a FLAC stream "
                             "per note, the smallest); every reader decodes all three to the same "
                             "samples (docs/ingest.md#audio-encodings)")
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first bad note (exit status 1) instead of rejecting it")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing dataset at DATASET")
    parser.add_argument("--num-cpus", type=int, default=None, metavar="N",
                        help="CPUs of the local Ray started when not under `ray job submit` "
                             "(default: all)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Ingest, print the reconciled summary, and return 0 (errors raise UserError)."""
    import ray

    # ingest() starts Ray only once its input checks pass, so bad input fails fast.
    console.set_progress(not args.no_progress)   # bars only on a terminal
    was_running = ray.is_initialized()
    try:
        summary = ingest(args.source, args.out, rows_per_shard=args.rows_per_shard,
                         strict=args.strict, overwrite=args.overwrite, progress=console.progress_bars(),
                         num_cpus=args.num_cpus, audio=args.audio)
    finally:
        if not was_running and ray.is_initialized():
            ray.shutdown()
    print(summary.format())
    return 0
