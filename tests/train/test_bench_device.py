"""``sing-ray bench train --device``: the device is checked before Ray starts, with a clear error."""
from __future__ import annotations

import pytest
import torch

from sing_ray.cli import main
from sing_ray.commands import bench_train
from sing_ray.errors import UserError
from sing_ray.train import bench

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without CUDA says")


@no_cuda
@pytest.mark.parametrize("flags", [["--device", "cuda"], ["--gpu"]])
def test_cuda_without_cuda_fails_at_once_saying_why(flags, capsys, monkeypatch):
    def no_ray(**_):
        raise AssertionError("Ray started before the device was checked")

    monkeypatch.setattr("sing_ray.runtime.init_ray", no_ray)
    assert main(["bench", "train", "--presets", "tiny", *flags]) == 2
    err = capsys.readouterr().err
    assert "sing-ray: error: --device cuda:" in err and "sees no CUDA device on this machine" in err
    assert torch.__version__ in err


def test_devices_and_settings_are_checked():
    assert bench.check_device("cpu") == "cpu"
    with pytest.raises(UserError, match="expected one of cpu, cuda"):
        bench.check_device("tpu")
    with pytest.raises(UserError, match="expected one of off, default, on"):
        bench.set_tf32("fast")
    assert bench_train.DEVICES == bench.DEVICES and bench_train.TF32 == tuple(bench.TF32_SETTINGS)


def test_gpu_and_another_device_conflict(capsys):
    assert main(["bench", "train", "--presets", "tiny", "--gpu", "--device", "cpu"]) == 2
    assert "--gpu asks for --device cuda, not --device cpu" in capsys.readouterr().err


def test_tf32_settings_leave_pytorch_defaults_by_default():
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        bench.set_tf32("on")
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        bench.set_tf32("off")
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        bench.set_tf32("default")
        assert not torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def test_the_table_names_the_setting_and_the_memory_on_cuda():
    row = bench.BenchRow(preset="paper", phase="finetune", device="cuda", threads=16, batch_size=64, steps=5,
                         notes_per_second_ray=780.0, notes_per_second_plain=790.0, ratio=0.99, gflop_per_step=100.0,
                         gflops_ray=1.0, gflops_plain=1.0, peak_gflops=50000.0, ray_wall_seconds=10.0,
                         peak_memory_gib=7.2, tf32="off")
    table = bench.format_table([row])
    assert "(fp32 cuda, TF32 off, 16 threads" in table and "paper finetune 7.2 GiB" in table
    cpu = bench.format_table([bench.BenchRow(**{**row.__dict__, "device": "cpu", "peak_memory_gib": 0.0})])
    assert "TF32" not in cpu and "Peak memory" not in cpu
