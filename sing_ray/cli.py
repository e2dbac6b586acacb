"""The ``sing-ray`` command: one subcommand per stage.

Each subcommand lives in ``sing_ray.commands.<module>`` with two functions,
``configure(parser)`` and ``run(args) -> int``. Only the module of the chosen
subcommand is imported, so ``sing-ray --help`` does not pay for torch and Ray.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from typing import Sequence

from .config import ConfigError
from .errors import UserError

log = logging.getLogger("sing_ray")

# (group, name) -> (module, one-line help). group None: a top-level command.
COMMANDS: dict[tuple[str | None, str], tuple[str, str]] = {
    ("data", "ingest"): ("ingest", "validate an NSynth-layout folder and write a Parquet dataset"),
    ("data", "soundfont"): ("soundfont", "render an NSynth-layout dataset from a SoundFont"),
    (None, "train"): ("train", "train SING's three phases on Ray Train, tracked in MLflow"),
    (None, "render"): ("render", "render an instrument x pitch x velocity grid to a sample library"),
    (None, "serve"): ("serve", "serve single notes over HTTP with Ray Serve"),
    (None, "morph"): ("morph", "one note morphed from one instrument's timbre to another's, in steps"),
    (None, "evaluate"): ("evaluate", "score a model on a dataset split (Table 1 metrics and more)"),
    (None, "quickstart"): ("quickstart", "the whole pipeline at small scale on embedded defaults"),
    ("bench", "ingest"): ("bench_ingest", "ingest throughput: sing-ray against a plain loop"),
    ("bench", "train"): ("bench_train", "training step throughput: Ray Train against plain PyTorch"),
    ("bench", "render"): ("bench_render", "render throughput against the raw forward pass; serve latency"),
    ("bench", "quality"): ("bench_quality", "time to quality: held-out notes in tune against minutes of training"),
    ("bench", "library"): ("bench_library", "a playable library's extra cost per note (loops, formats, page)"),
}
GROUP_HELP = {"data": "build and ingest datasets", "bench": "benchmarks printed as side-by-side ratios"}


def _available() -> dict[tuple[str | None, str], tuple[str, str]]:
    found = {}
    for key, (module, text) in COMMANDS.items():
        if importlib.util.find_spec(f"sing_ray.commands.{module}") is not None:
            found[key] = (module, text)
    return found


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sing-ray", description="Train, render and serve SING (Défossez et al., 2018) on Ray.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, and Ray's, MLflow's and the workers' own output on the terminal")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    wanted = [a for a in argv if not a.startswith("-")][:2]
    for (group, name), (module, text) in _available().items():
        if group is None:
            sub = top.add_parser(name, help=text, description=text)
            chosen = wanted[:1] == [name]
        else:
            if group not in groups:
                gp = top.add_parser(group, help=GROUP_HELP.get(group, ""))
                groups[group] = gp.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
            sub = groups[group].add_parser(name, help=text, description=text)
            chosen = wanted == [group, name]
        sub.set_defaults(_module=module)
        if chosen:
            importlib.import_module(f"sing_ray.commands.{module}").configure(sub)
    return parser


def main(argv: Sequence[str] | None = None, *, program: bool | None = None) -> int:
    """``sing-ray``: parse, set up the console, run the subcommand. Returns the exit status.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
        program: whether this call is the process's program (the ``sing-ray`` script, a job's
            entry point), whose descriptor 2 then goes to the log file; default: ``argv is None``.
            Called with arguments from a test or another program, it leaves the descriptor alone.
    """
    native_to_log = argv is None if program is None else program
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    from .runtime import setup_logging

    setup_logging(args.verbose, native_to_log=native_to_log)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    module = importlib.import_module(f"sing_ray.commands.{args._module}")
    try:
        return int(module.run(args) or 0)
    except (UserError, ConfigError) as err:
        code = getattr(err, "exit_code", 2)
        print(f"sing-ray: error: {err}", file=sys.stderr)
        return code


def run_pipeline(module: str, argv: Sequence[str] | None = None) -> int:
    """The body of every ``pipelines/<name>.py``: one subcommand's flags, run as a Ray job script.

    Args:
        module: the subcommand's module under ``sing_ray.commands`` (``ingest``, ``train``...).
        argv: the arguments (default: ``sys.argv[1:]``).
    Returns:
        the exit status: 0, or the error's (2 for bad input, 1 for a failed run).
    """
    from .runtime import setup_logging

    prog = f"python -m pipelines.{module}"
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, and Ray's, MLflow's and the workers' own output on the terminal")
    command = importlib.import_module(f"sing_ray.commands.{module}")
    command.configure(parser)
    native_to_log = argv is None   # the job script's own process (see main)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(args.verbose, native_to_log=native_to_log)
    try:
        return int(command.run(args) or 0)
    except (UserError, ConfigError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 2)


if __name__ == "__main__":
    sys.exit(main())
