"""``sing-ray morph``: one note morphed from one instrument's timbre to another's, in steps, as audio files."""
from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's arguments."""
    from ..audio import FORMATS
    from ..render import DTYPES

    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.description = (
        "Render one note (PITCH, VELOCITY) at STEPS timbres evenly from instrument FROM to instrument TO: "
        "step k mixes their rows of the model's instrument table with weights 1-t and t, t = k/(STEPS-1), "
        "so the first file is FROM's own note and the last TO's. Writes OUT/<FROM>-to-<TO>-<pitch>-"
        "<velocity>-<k>.wav and OUT/morph.json (each file's weights). Runs here, without Ray. "
        "See docs/render.md.")
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="a checkpoint file or an MLflow model URI (models:/sing/3, runs:/<id>/sing)")
    parser.add_argument("--from", dest="source", required=True, metavar="INSTRUMENT",
                        help="the instrument the morph starts from (a name of the model's vocabulary)")
    parser.add_argument("--to", dest="target", required=True, metavar="INSTRUMENT",
                        help="the instrument the morph ends at")
    parser.add_argument("--steps", type=int, default=5, metavar="N", help="notes to write, both ends included (>= 2)")
    parser.add_argument("--pitch", type=int, default=60, metavar="P", help="MIDI pitch of the note (0-127)")
    parser.add_argument("--velocity", type=int, default=100, metavar="V",
                        help="velocity of the note (25, 50, 75, 100 or 127)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the notes and morph.json")
    parser.add_argument("--format", default="wav", choices=sorted(FORMATS), help="audio file format")
    parser.add_argument("--dtype", default="float32", choices=DTYPES, help="precision of the model's products")
    parser.add_argument("--tracking-uri", default=None, metavar="URI",
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")


def write_morph(model: str, source: str, target: str, out: str, *, steps: int = 5, pitch: int = 60,
                velocity: int = 100, fmt: str = "wav", dtype: str = "float32",
                tracking_uri: str | None = None) -> dict:
    """Render and write the morph; returns what ``morph.json`` holds.

    Raises:
        UserError naming the flag: an unknown instrument (close matches listed), the same
        instrument twice, steps under 2, a pitch or velocity the model does not take, a model
        without an instrument table.
    """
    import json
    import os
    from pathlib import Path

    import torch

    from ..audio import encode_note
    from ..errors import UserError
    from ..generate import Generator, morph_mix, morph_positions
    from ..nsynth import PITCH_RANGE, VELOCITIES
    from ..tracking import resolve_model

    positions = morph_positions(steps)
    if not PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1]:
        raise UserError(f"--pitch: {pitch} outside {PITCH_RANGE[0]}-{PITCH_RANGE[1]}")
    if velocity not in VELOCITIES:
        raise UserError(f"--velocity: {velocity} is not one of {', '.join(map(str, VELOCITIES))}")
    generator = Generator.from_checkpoint(resolve_model(model, tracking_uri), dtype=getattr(torch, dtype))
    for name, flag in ((source, "--from"), (target, "--to")):
        try:
            generator.instrument_id(name)
        except UserError as err:
            raise UserError(f"{flag}: {err}") from None
    mixes = [morph_mix(source, target, t) for t in positions]
    try:
        wavs = generator.generate([dict(m) for m in mixes], [pitch] * steps, [velocity] * steps)
    except UserError as err:
        raise UserError(f"morph: {err}") from None
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for k, (t, mix, wav) in enumerate(zip(positions, mixes, wavs)):
        name = f"{source}-to-{target}-{pitch:03d}-{velocity:03d}-{k:02d}.{fmt}"
        data, stats = encode_note(wav, fmt)
        tmp = folder / f".{name}.tmp-{os.getpid()}"
        tmp.write_bytes(data)
        os.replace(tmp, folder / name)
        written.append({"file": name, "position": t, "weights": mix, "peak": stats["peak"], "rms": stats["rms"]})
    result = {"model": str(model), "from": source, "to": target, "pitch": pitch, "velocity": velocity,
              "steps": written}
    (folder / "morph.json").write_text(json.dumps(result, indent=1))
    return result


def run(args: argparse.Namespace) -> int:
    """Check the names and the note, render the steps in one batch, write the files; returns 0."""
    result = write_morph(args.model, args.source, args.target, args.out, steps=args.steps, pitch=args.pitch,
                         velocity=args.velocity, fmt=args.format, dtype=args.dtype, tracking_uri=args.tracking_uri)
    for step in result["steps"]:
        weights = ", ".join(f"{w:.3f} {n}" for n, w in step["weights"].items())
        print(f"{step['file']}: {weights} (peak {step['peak']:.3f})")
    print(f"{len(result['steps'])} notes from {args.source} to {args.target} in {args.out} "
          f"(morph.json lists them)")
    return 0
