"""The fast inference path (frames-last GEMMs, overlap-add, cropped frames) is the reference function."""
import numpy as np
import pytest
import torch

from sing_ray.config import load_config
from sing_ray.generate import Generator
from sing_ray.models import SING, Decoder, build_sing

from .conftest import INSTRUMENTS


def _notes():
    return torch.tensor([0, 2, 1, 0]), torch.tensor([21, 60, 61, 108]), torch.tensor([0, 1, 3, 4])


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_synthesize_equals_forward_in_float32(preset):
    torch.manual_seed(0)
    model = build_sing(load_config(preset).model, num_instruments=3).eval()
    with torch.inference_mode():
        ref = model(*_notes())
        fast = model.synthesize(*_notes())
    assert fast.shape == ref.shape == (4, 64000) and fast.dtype == torch.float32
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-6)


def test_bfloat16_fast_path_is_as_close_to_float32_as_the_reference_bfloat16():
    """bf16 changes the numbers; the fast path must not add error beyond what autocast gives."""
    torch.manual_seed(0)
    model = build_sing(load_config("small").model, num_instruments=3).eval()
    with torch.inference_mode():
        ref = model(*_notes())
        weights = model.decoder.gemm_weights(torch.bfloat16)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = model.synthesize(*_notes(), weights=weights)
            slow = model(*_notes()).float()
    assert weights.context.dtype == torch.bfloat16 and fast.dtype == torch.float32
    err_fast = ((fast - ref).norm() / ref.norm()).item()
    err_slow = ((slow - ref).norm() / ref.norm()).item()
    assert err_fast < 0.02
    assert err_fast <= 1.25 * err_slow


@pytest.mark.parametrize("kernel_size,stride,context_size", [(64, 16, 3), (60, 16, 5), (32, 32, 1)])
def test_decoder_synthesize_any_window(kernel_size, stride, context_size):
    """Any sample range, kernels that are not a multiple of the stride (the fold path), context 1."""
    torch.manual_seed(1)
    dec = Decoder(dimension=6, channels=10, kernel_size=kernel_size, stride=stride,
                  context_size=context_size, rewrite_layers=1).eval()
    frames = torch.randn(2, 6, 12)
    full = dec(frames)
    total = dec.wav_length(12)
    for start, stop in [(0, total), (5, total - 7), (stride * 3 + 1, stride * 5), (total - 1, total)]:
        got = dec.synthesize(frames.transpose(1, 2), start, stop)
        torch.testing.assert_close(got, full[:, start:stop], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="outside"):
        dec.synthesize(frames.transpose(1, 2), 0, total + 1)
    with pytest.raises(ValueError, match="needed"):
        dec.synthesize(frames.transpose(1, 2)[:, :3], 0, total, num_frames=12)


def test_synthesize_is_differentiable_like_forward():
    """Training may use the fast path: the same gradients as the reference."""
    torch.manual_seed(0)
    model = SING(num_instruments=2, dimension=4, channels=8, kernel_size=64, stride=16, hidden_size=8,
                 num_layers=1, wav_length=640, pad=48)
    notes = (torch.tensor([0, 1]), torch.tensor([40, 80]), torch.tensor([1, 2]))
    grads = []
    for fn in (model, model.synthesize):
        model.zero_grad()
        fn(*notes).square().sum().backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for key in grads[0]:
        torch.testing.assert_close(grads[1][key], grads[0][key], rtol=1e-4, atol=1e-6)


def test_state_dict_keys_unchanged():
    model = build_sing(load_config("tiny").model, num_instruments=2)
    keys = set(model.state_dict())
    assert not any("gemm" in k for k in keys)
    assert "decoder.synthesis.weight" in keys and "decoder.body.0.weight" in keys


def test_generator_fast_and_reference_agree_and_mix_rows(tiny_sing):
    fast = Generator.from_checkpoint(tiny_sing)
    ref = Generator.from_checkpoint(tiny_sing, fast=False)
    args = (["guitar_acoustic_000", "keyboard_electronic_002"], [30, 90], [25, 127])
    np.testing.assert_allclose(fast.generate(*args), ref.generate(*args), rtol=1e-5, atol=1e-6)
    mix = {"guitar_acoustic_000": 0.7, "flute_synthetic_001": 0.3}
    # A batch of plain rows and mixed rows gives each row what it would get alone.
    rows = fast.generate([INSTRUMENTS[0], mix], [60, 60], [100, 100])
    np.testing.assert_allclose(rows[0], fast.generate([INSTRUMENTS[0]], [60], [100])[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rows[1], fast.generate([0], [60], [100], mix=mix)[0], rtol=1e-5, atol=1e-6)
    bf16 = Generator.from_checkpoint(tiny_sing, dtype=torch.bfloat16).generate(*args)
    assert bf16.dtype == np.float32 and bf16.shape == (2, 64000)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fast_path_on_gpu_matches_the_cpu_reference(tiny_sing):
    args = (["guitar_acoustic_000", "flute_synthetic_001"], [40, 80], [50, 100])
    cpu = Generator.from_checkpoint(tiny_sing, fast=False).generate(*args)
    gpu = Generator.from_checkpoint(tiny_sing, device="cuda").generate(*args)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-3, atol=1e-4)
    bf16 = Generator.from_checkpoint(tiny_sing, device="cuda", dtype=torch.bfloat16).generate(*args)
    assert np.linalg.norm(bf16 - cpu) / np.linalg.norm(cpu) < 0.02
