import math

import torch

from sing_ray import dsp
from sing_ray.losses import build_loss, spectral_loss, table1_metrics, wav_loss


def _note(f0=440.0, n=16000):
    t = torch.arange(n) / 16000
    return 0.5 * torch.sin(2 * math.pi * f0 * t)


def test_losses_are_zero_on_equal_inputs():
    x = torch.stack([_note(), _note(220.0)])
    assert spectral_loss(x, x).item() == 0.0
    assert wav_loss(x, x).item() == 0.0
    m = table1_metrics(x, x)
    assert m["wav_mse"].tolist() == [0.0, 0.0] and m["spectral_l1"].tolist() == [0.0, 0.0]


def test_spectral_loss_ignores_phase_and_wav_loss_does_not():
    a = _note().unsqueeze(0)
    t = torch.arange(16000) / 16000
    shifted = (0.5 * torch.sin(2 * math.pi * 440 * t + math.pi / 2)).unsqueeze(0)
    same_partials = spectral_loss(a, shifted).item()
    assert wav_loss(a, shifted).item() > 0.2
    assert spectral_loss(a, _note(660.0).unsqueeze(0)).item() > 5 * same_partials


def test_log_power_matches_definition():
    x = _note().unsqueeze(0)
    spec = torch.stft(x, 1024, 256, window=torch.hann_window(1024), return_complex=True)
    torch.testing.assert_close(dsp.log_power(x), torch.log1p(spec.abs() ** 2), rtol=1e-4, atol=1e-4)


def test_spectral_loss_has_finite_gradient_on_silence():
    out = torch.zeros(1, 4096, requires_grad=True)
    loss = build_loss("spectral")(out, torch.zeros(1, 4096))
    loss.backward()
    assert torch.isfinite(out.grad).all()
    assert build_loss("spectral", "mse")(out, _note(n=4096).unsqueeze(0)).item() > 0


def test_pcm_round_trip():
    pcm = torch.randint(-32768, 32767, (1000,), dtype=torch.int16).numpy()
    assert (dsp.float_to_pcm16(dsp.pcm16_to_float(pcm.tobytes())) == pcm).all()
