"""What `ray job submit --working-dir .` ships from a checkout where the README's commands have run.

Ray zips the working directory honouring `.gitignore`, and its head refuses a package over
100 MiB. The quick start alone writes some 300 MB under `quickstart/`; the README's other
commands write `data/`, `runs/`, `library/`, `evaluation/`, `table1/` and an MLflow store.
None of it may travel with a job.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIG = 2 * 1024 * 1024          # incompressible bytes written at each output path
MAX_PACKAGE = 3 * 1024 * 1024  # what the job's package may weigh: the code, the docs, the presets


def _default(configure, dest: str):
    parser = argparse.ArgumentParser()
    configure(parser)
    return parser.get_default(dest)


def written_by_the_readme_commands() -> list[str]:
    """Paths, relative to the checkout, that the README's commands write with their defaults."""
    from pipelines import reproduce_table1
    from sing_ray.commands import evaluate, quickstart
    from sing_ray.config import RunConfig
    from sing_ray.tracking import resolve_tracking_uri

    sqlite = resolve_tracking_uri(None).removeprefix("sqlite:///")
    paths = [
        _default(quickstart.configure, "workdir"),              # ./scripts/quickstart.sh
        RunConfig().storage_path,                                # sing-ray train
        "evaluation",                                            # sing-ray evaluate (default --out evaluation/...)
        reproduce_table1.build_parser().get_default("out"),             # python -m pipelines.reproduce_table1
        os.path.relpath(sqlite, os.getcwd()),                    # the embedded MLflow store
        "mlruns",                                                # its artifacts
        "library", "data",                                       # the README's "Using it" --out folders
        ".venv",                                                 # scripts/setup.sh
    ]
    return paths


@pytest.fixture
def used_checkout(tmp_path, monkeypatch):
    """A copy of the checkout's tracked files, then a big file at every path the commands write."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to list the tracked files")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout
    copy = tmp_path / "checkout"
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    monkeypatch.chdir(copy)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    written = written_by_the_readme_commands()
    for rel in written:
        target = copy / rel if rel.endswith((".db", ".sqlite")) else copy / rel / "sub" / "note.bin"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(os.urandom(BIG))
    return copy, written


def test_the_job_package_leaves_out_what_the_readme_commands_wrote(used_checkout, tmp_path):
    from ray._private.runtime_env.packaging import create_package

    copy, written = used_checkout
    package = tmp_path / "package.zip"
    create_package(str(copy), package, include_gitignore=True)    # what `ray job submit` uploads
    names = zipfile.ZipFile(package).namelist()
    shipped = sorted({n.split("/")[0] for n in names})
    leaked = [rel for rel in written if any(n == rel or n.startswith(rel.rstrip("/") + "/") for n in names)]
    assert not leaked, f"the job package would carry {leaked}: add them to .gitignore"
    assert package.stat().st_size < MAX_PACKAGE, (
        f"the job package weighs {package.stat().st_size / 2**20:.1f} MiB; top level: {shipped}")
    # The entry points ship.
    assert {"pipelines/quickstart.py", "sing_ray/__init__.py", "sing_ray/presets/quick.yaml"} <= set(names)
