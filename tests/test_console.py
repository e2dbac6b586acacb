"""The terminal: the driver's view of a training phase, and Ray's internals kept off it unless --verbose."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from sing_ray import console

from conftest import make_nsynth


def test_phase_progress_prints_each_epoch_once_and_the_workers_warnings(tmp_path, caplog):
    progress, journal = tmp_path / "p" / "autoencoder.json", tmp_path / "p" / "autoencoder.jsonl"
    journal.parent.mkdir()
    journal.write_text(json.dumps({"epoch": 1, "epochs": 2, "train_loss": 9.0}) + "\n")   # an earlier invocation's
    caplog.set_level(logging.INFO, logger="sing_ray.train")
    with console.PhaseProgress("autoencoder", progress, journal, show_bar=False, every_s=0.05) as view:
        with open(journal, "a") as handle:
            handle.write(json.dumps({"epoch": 2, "epochs": 2, "train_loss": 0.25, "valid_spectral_l1": 0.05,
                                     "train_notes": 240.0, "notes_per_second": 80.0, "epoch_seconds": 3.0,
                                     "lr": 1e-3}) + "\n")
            handle.write(json.dumps({"status": "finished", "epoch": 2, "epochs": 2, "train_loss": 0.25,
                                     "test_spectral_l1": 0.04, "warnings": ["autoencoder: all 4 examples are silent"]})
                         + "\n")
            handle.write('{"epoch": 3, "tra')            # a line still being written is not read yet
    lines = [r.getMessage() for r in caplog.records if r.name == "sing_ray.train"]
    assert lines == ["autoencoder epoch 2/2: train_loss 0.25, valid_spectral_l1 0.05, 240 notes at 80 notes/s, 3.0 s",
                     "autoencoder: all 4 examples are silent",
                     "autoencoder finished after 2 epochs: train_loss 0.25, test_spectral_l1 0.04"]
    assert [r.levelname for r in caplog.records if r.name == "sing_ray.train"] == ["INFO", "WARNING", "INFO"]
    assert len(view.lines) == 2


def test_a_resume_is_news_and_a_restart_is_a_warning(tmp_path, caplog):
    progress, journal = tmp_path / "sequence.json", tmp_path / "sequence.jsonl"
    caplog.set_level(logging.INFO, logger="sing_ray.train")
    with console.PhaseProgress("sequence", progress, journal, show_bar=False, every_s=0.05) as view:
        with open(journal, "a") as handle:   # a re-run picks the phase up after its epoch 1
            handle.write(json.dumps({"event": "restored", "epoch": 1, "epochs": 3}) + "\n")
        view.poll()
        with open(journal, "a") as handle:   # then a worker dies in epoch 3: the group restarts
            handle.write(json.dumps({"epoch": 2, "epochs": 3, "train_loss": 0.5}) + "\n")
            handle.write(json.dumps({"event": "restored", "epoch": 2, "epochs": 3}) + "\n")
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "sing_ray.train"]
    assert records == [
        ("INFO", "sequence: resuming after epoch 1 of 3 (checkpoint restored)"),
        ("INFO", "sequence epoch 2/3: train_loss 0.5"),
        ("WARNING", "sequence: the workers restarted (a worker or its node failed) and resumed from the "
                    "checkpoint of epoch 2")]


@pytest.mark.parametrize("verbose", [False, True])
def test_what_a_library_prints_goes_to_the_log_file_unless_verbose(tmp_path, capsys, monkeypatch, verbose):
    """MLflow prints "Successfully registered model" itself; the console keeps it in the log."""
    monkeypatch.setitem(console._state, "verbose", verbose)
    monkeypatch.setitem(console._state, "file", tmp_path / "driver.log")
    with console.prints_to_log():
        print("Successfully registered model 'sing'.")
        print("Created version '2' of model 'sing'.", file=sys.stderr)
    seen = capsys.readouterr()
    logged = (tmp_path / "driver.log").read_text() if (tmp_path / "driver.log").exists() else ""
    if verbose:
        assert "Successfully registered" in seen.out and "Created version" in seen.err and logged == ""
    else:
        assert seen.out == seen.err == ""
        assert "Successfully registered model 'sing'." in logged and "Created version '2'" in logged


@pytest.mark.slow
@pytest.mark.parametrize("verbose", [False, True])
def test_ray_internals_stay_off_the_terminal_unless_verbose(tmp_path, verbose):
    make_nsynth(tmp_path / "src", pitches=range(60, 63), velocities=(127,))
    command = [str(Path(sys.executable).with_name("sing-ray")), *(["--verbose"] if verbose else []), "data", "ingest",
               "--source", str(tmp_path / "src"), "--out", str(tmp_path / "ds"), "--no-progress", "--num-cpus", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    terminal = done.stdout + done.stderr
    assert "6 accepted, 0 rejected of 6 listed" in terminal
    ray_lines = [line for line in terminal.splitlines()
                 if "streaming_executor" in line or "Execution plan" in line or "Token authentication" in line]
    if verbose:
        assert ray_lines, terminal[-3000:]
    else:
        assert ray_lines == [], ray_lines


NATIVE = """
import logging, os, sys
from sing_ray import console
console.setup(verbose={verbose}, native_to_log=True)
console.log_to({log!r})
os.write(2, b"[2026 E 1 1] core_worker.cc:2465: a native line\\n")   # as Ray's C++ core worker writes
logging.getLogger("sing_ray.demo").info("our own line")
print("a traceback would go here", file=sys.stderr)
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_native_writes_to_descriptor_2_go_to_the_log_file_and_ours_to_the_terminal(tmp_path, verbose):
    log = tmp_path / "logs" / "driver.log"
    done = subprocess.run([sys.executable, "-c", NATIVE.format(verbose=verbose, log=str(log))],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "our own line" in done.stderr and "a traceback would go here" in done.stderr
    logged = log.read_text() if log.exists() else ""
    if verbose:
        assert "core_worker.cc" in done.stderr and "core_worker.cc" not in logged
    else:
        assert "core_worker.cc" not in done.stderr, done.stderr
        assert "core_worker.cc:2465: a native line" in logged


def test_the_raylets_scheduling_notes_go_to_the_log_file_and_its_other_messages_do_not(tmp_path, monkeypatch, capsys):
    from ray._private import worker as ray_worker

    monkeypatch.setitem(console._state, "verbose", False)
    monkeypatch.setitem(console._state, "file", tmp_path / "driver.log")
    monkeypatch.setitem(console._state, "handler", None)
    monkeypatch.setattr(ray_worker, "print_to_stdstream", ray_worker.print_to_stdstream)
    monkeypatch.setattr(logging, "lastResort", logging.lastResort)
    for name in console.LIBRARY_LOGGERS:   # the loggers get their terminal handlers back afterwards
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "handlers", list(logger.handlers))
        monkeypatch.setattr(logger, "propagate", logger.propagate)
    console.quiet_libraries()
    note = ("WARNING: 8 PYTHON worker processes have been started on node: 5dfc with address: 127.0.0.1, "
            "which is 4x the maximum expected startup concurrency (2).")
    fault = "Task was killed due to the node running low on memory."
    for line in (note, fault):
        ray_worker.print_to_stdstream({"lines": [line], "pid": "raylet", "is_err": False}, ignore_prefix=False)
    seen = capsys.readouterr()
    console._file_handler().flush()
    assert fault in seen.out and "PYTHON worker processes" not in seen.out + seen.err
    assert "PYTHON worker processes have been started" in (tmp_path / "driver.log").read_text()


def test_a_jobs_entry_point_is_its_process_program_and_a_call_with_arguments_is_not(monkeypatch):
    """Under `ray job submit`, `python -m pipelines.quickstart` owns its descriptor 2 (Ray's C++ lines to the log)."""
    import pipelines.quickstart as entry

    calls = []
    monkeypatch.setattr(entry, "cli_main", lambda argv, program: calls.append((argv, program)) or 0)
    monkeypatch.setattr(sys, "argv", ["pipelines/quickstart.py", "--scale", "smallest"])
    assert entry.main() == 0 and entry.main(["--scale", "tiny"]) == 0
    assert calls == [(["quickstart", "--scale", "smallest"], True), (["quickstart", "--scale", "tiny"], False)]
