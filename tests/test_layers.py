"""The package's layers: import-linter's contracts in pyproject.toml hold, so no import cycle comes back.

``[tool.importlinter]`` writes the floors of sing_ray once (commands on top, the
leaves at the bottom) and the order inside its larger packages; ``lint-imports``
(scripts/setup.sh installs it with the dev extra) checks every import against
them, lazy imports inside functions included.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``lint-imports`` of this interpreter's environment, on the pyproject.toml in ``cwd``."""
    exe = Path(sys.executable).parent / "lint-imports"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: install the dev extra (scripts/setup.sh does) to check the layers")
    env = dict(os.environ, PYTHONPATH=str(cwd))
    return subprocess.run([str(exe), "--no-cache", "--no-logo", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_every_import_contract_is_kept():
    done = _lint_imports(ROOT)
    assert done.returncode == 0, f"an import breaks sing_ray's layers:\n{done.stdout}{done.stderr}"
    assert "0 broken" in done.stdout


def test_an_import_cycle_breaks_the_layers(tmp_path):
    """The cycle this contract replaced (library took render's encoder, render took library's writer) fails it."""
    shutil.copytree(ROOT / "sing_ray", tmp_path / "sing_ray", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    notes = tmp_path / "sing_ray" / "library" / "notes.py"
    notes.write_text(notes.read_text() + "\n\ndef _encode():\n    from ..render import encode_pcm16\n")
    done = _lint_imports(tmp_path, "--contract", "layers")
    assert done.returncode == 1, done.stdout
    assert "sing_ray.library.notes -> sing_ray.render" in done.stdout
