"""``sing-ray bench render --device``: CUDA is checked before Ray starts, and the GPU checks run on any device."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sing_ray.cli import main
from sing_ray.commands import bench_render
from sing_ray.train import bench

from .conftest import INSTRUMENTS

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without CUDA says")


def _nothing_may_start(monkeypatch):
    def refuse(what):
        def call(*_, **__):
            raise AssertionError(f"{what} before the device was checked")
        return call

    monkeypatch.setattr("sing_ray.runtime.init_ray", refuse("Ray started"))
    monkeypatch.setattr(bench_render, "gemm_peak", refuse("the CPU's GEMM peak timed"))
    monkeypatch.setattr(bench_render, "cuda_gemm_peak", refuse("the GPU's GEMM peak timed"))


@no_cuda
@pytest.mark.parametrize("flags", [["--device", "cuda"], ["--gpu"]])
def test_cuda_without_cuda_fails_at_once_saying_why(flags, capsys, monkeypatch):
    _nothing_may_start(monkeypatch)
    assert main(["bench", "render", "--presets", "tiny", "--serve-preset", "none", *flags]) == 2
    err = capsys.readouterr().err
    assert "sing-ray: error: --device cuda:" in err and "sees no CUDA device on this machine" in err
    assert torch.__version__ in err
    assert ("a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}") in err


def test_gpu_and_another_device_conflict(capsys, monkeypatch):
    _nothing_may_start(monkeypatch)
    assert main(["bench", "render", "--gpu", "--device", "cpu"]) == 2
    assert "--gpu asks for --device cuda, not --device cpu" in capsys.readouterr().err


def test_a_checkpoint_that_cannot_render_is_refused_before_anything_starts(tmp_path, capsys, monkeypatch):
    from sing_ray.checkpoint import save_checkpoint
    from sing_ray.config import load_config
    from sing_ray.models import build_autoencoder

    _nothing_may_start(monkeypatch)
    path = save_checkpoint(tmp_path / "ae.pt", build_autoencoder(load_config("tiny").model), phase="autoencoder",
                           epoch=0)
    assert main(["bench", "render", "--checkpoint", str(path)]) == 2
    assert "a checkpoint of class Autoencoder; need a SING (finetune phase) checkpoint" in capsys.readouterr().err


def test_the_flag_names_the_benchmarks_devices():
    assert bench_render.DEVICES == bench.DEVICES
    assert bench_render.default_batch_size("cpu", "paper") == 32
    assert bench_render.default_batch_size("cuda", "paper") == 64
    assert bench_render.default_batch_size("cuda", "small") == 256


def test_agreement_compares_the_device_with_the_cpus_float32(tiny_sing):
    # On the CPU itself: the plain float32 forward is the reference, the fast path is the same
    # function with its weights laid out once, bfloat16 a small relative error away.
    got = bench_render.agreement(tiny_sing, device="cpu")
    assert set(got) == {"reference_rms", "forward float32", "fast float32", "forward bfloat16", "fast bfloat16"}
    assert got["reference_rms"] > 0
    assert got["forward float32"] == 0.0
    assert got["fast float32"] < 1e-4
    assert 0 < got["forward bfloat16"] < 0.05 and 0 < got["fast bfloat16"] < 0.05
    assert bench_render.relative_error(np.ones(4), np.ones(4)) == 0.0
    assert bench_render.relative_error(np.zeros(4), np.ones(4)) == pytest.approx(1.0)


def test_the_forward_pass_in_this_process_times_every_note(tiny_sing):
    notes = [(INSTRUMENTS[i % 3], 60 + i, 100) for i in range(5)]
    got = bench_render.time_forward_here(tiny_sing, "float32", notes, batch_size=2, reference_batches=1,
                                         device="cpu")
    assert got["notes"] == 5 and got["reference_notes"] == 2
    assert got["forward_s"] > 0 and got["reference_s"] > 0
    assert "reference_s" not in bench_render.time_forward_here(tiny_sing, "float32", notes, 2, 0, "cpu")


def test_a_cuda_row_gives_notes_per_second_and_the_errors_without_cpu_time():
    fwd = {"notes": 512, "forward_s": 0.5, "reference_s": 0.2, "reference_notes": 64}
    job = {"render_s": 10.0, "plan_s": 0.1, "rendered": 512, "first_batch_s": 5.0, "steady_audio_per_s": 400.0}
    agree = {"reference_rms": 0.1, "forward float32": 1e-6, "fast float32": 2e-6, "forward bfloat16": 2e-3,
             "fast bfloat16": 3e-3}
    row = bench_render._row("paper", "bfloat16", fwd, job, 32.65e9, {"bfloat16": 700e3}, None, agree)
    assert row["forward_notes_per_s"] == 1024 and row["forward_audio_per_s"] == 4096
    assert row["error_vs_cpu"] == 3e-3 and row["forward_error_vs_cpu"] == 2e-3
    assert "cpu_gflops" not in row
    line = bench_render._describe(row)
    assert "1,024 notes/s" in line and "fast path 3.0e-03, plain forward 2.0e-03" in line
    assert "by CPU time" not in line
