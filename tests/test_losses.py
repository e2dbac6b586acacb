import math

import auraloss
import pytest
import torch
import torch.nn.functional as F

from sing_ray import dsp
from sing_ray.config import Config, ConfigError, TrainConfig, load_config
from sing_ray.losses import (LoudnessLoss, MRSTFTLoss, SpectralLoss, build_loss, build_loss_terms, spectral_loss,
                             table1_metrics, wav_loss)


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
    assert build_loss("spectral", spectral_distance="mse")(out, _note(n=4096).unsqueeze(0)).item() > 0


def test_pcm_round_trip():
    pcm = torch.randint(-32768, 32767, (1000,), dtype=torch.int16).numpy()
    assert (dsp.float_to_pcm16(dsp.pcm16_to_float(pcm.tobytes())) == pcm).all()


def _tone(n=16000, dbfs=-28.0):
    """A decaying harmonic tone (220 Hz, 8 partials at 1/k) at ``dbfs`` RMS: (1, n)."""
    t = torch.arange(n) / 16000
    tone = sum(torch.sin(2 * math.pi * 220 * k * t) / k for k in range(1, 9)) * torch.exp(-3 * t)
    return (tone * (10 ** (dbfs / 20) / tone.square().mean().sqrt())).unsqueeze(0)


def _power(wav):
    spec = torch.stft(wav, 1024, 256, window=torch.hann_window(1024), return_complex=True)
    return spec.real.square() + spec.imag.square()


def test_spectral_term_with_offset_one_is_the_papers_loss_bit_for_bit():
    torch.manual_seed(0)
    out, ref = 0.1 * torch.randn(2, 8000), torch.stack([_note(n=8000), _note(330.0, n=8000)])
    # The definition before train.log_offset existed: L1 between log(1 + |STFT|^2).
    papers = F.l1_loss(torch.log1p(_power(out)), torch.log1p(_power(ref)))
    assert torch.equal(build_loss("spectral")(out, ref), papers)
    assert torch.equal(build_loss(TrainConfig(loss="spectral", log_offset=1.0))(out, ref), papers)
    assert torch.equal(dsp.log_power(out, offset=1.0), dsp.log_power(out))
    torch.testing.assert_close(dsp.log_power(out, offset=1e-3), torch.log(1e-3 + _power(out)))
    mse = build_loss(TrainConfig(loss="spectral", spectral_distance="mse", log_offset=1e-3))(out, ref)
    torch.testing.assert_close(mse, F.mse_loss(torch.log(1e-3 + _power(out)), torch.log(1e-3 + _power(ref))))


def test_mrstft_is_auraloss_called_directly():
    torch.manual_seed(0)
    out, ref = 0.1 * torch.randn(2, 8000), torch.stack([_note(n=8000), _note(330.0, n=8000)])
    sizes = [2048, 1024, 512, 256, 128, 64]
    direct = auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=sizes, hop_sizes=[n // 4 for n in sizes], win_lengths=sizes, eps=1e-7)
    assert torch.equal(build_loss("mrstft")(out, ref), direct(out.unsqueeze(1), ref.unsqueeze(1)))
    ours = build_loss(TrainConfig(loss="mrstft", mrstft_fft_sizes=(512, 128), mrstft_eps=1e-5))
    direct = auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=[512, 128], hop_sizes=[128, 32], win_lengths=[512, 128], eps=1e-5)
    assert torch.equal(ours(out, ref), direct(out.unsqueeze(1), ref.unsqueeze(1)))
    assert build_loss("mrstft")(ref, ref).item() == 0.0


def test_loss_expression_is_the_weighted_sum_of_its_terms():
    torch.manual_seed(0)
    out, ref = 0.1 * torch.randn(2, 8000), torch.stack([_note(n=8000), _note(330.0, n=8000)])
    train = TrainConfig(loss="mrstft + 0.5*spectral + 0.05*wav + 0.02*loudness", n_fft=512, hop_length=128)
    loss = build_loss(train)
    terms = build_loss_terms(train)
    assert {name: w for name, (w, _) in terms.items()} == {"mrstft": 1.0, "spectral": 0.5, "wav": 0.05,
                                                           "loudness": 0.02}
    assert loss.describe() == "mrstft + 0.5*spectral + 0.05*wav + 0.02*loudness"
    parts = loss.components(out, ref)
    assert list(parts) == ["mrstft", "spectral", "wav", "loudness"]
    torch.testing.assert_close(parts["spectral"], spectral_loss(out, ref, 512, 128))
    torch.testing.assert_close(parts["wav"], wav_loss(out, ref))
    torch.testing.assert_close(parts["loudness"], LoudnessLoss(512, 128)(out, ref))
    expected = sum(w * fn(out, ref) for w, fn in terms.values())
    torch.testing.assert_close(loss(out, ref), expected)
    assert isinstance(terms["mrstft"][1], MRSTFTLoss) and isinstance(terms["spectral"][1], SpectralLoss)
    with pytest.raises(ConfigError, match="unknown term 'cosine'"):
        build_loss("spectral + cosine")


def test_loudness_measures_level_in_nepers():
    ref = torch.stack([_note(n=8000), _note(330.0, n=8000)])
    assert LoudnessLoss()(ref, ref).item() == 0.0
    # Twice as loud is log(2) louder in every frame (the floor, -100 dBFS, is far below).
    torch.testing.assert_close(LoudnessLoss()(2 * ref, ref), torch.tensor(math.log(2.0)))
    env = dsp.log_rms(torch.zeros(1, 8000))
    assert env.shape == (1, 1 + 8000 // 256) and torch.allclose(env, torch.full_like(env, math.log(1e-5)))


def test_level_weighted_loudness_charges_a_plucked_notes_attack_more_than_its_tail():
    """``train.loudness_weighting: level``: the frames where the note is loud decide its level.

    A plucked note (a 40 ms attack, then 30 dB a second of decay) generated with its first
    0.1 s 12 dB short is the quieter note to a listener; the same note with its last 3 s
    12 dB too loud is not. Every frame counting the same ranks them the other way round.
    """
    t = torch.arange(4 * 16000) / 16000
    target = (torch.sin(2 * math.pi * 440 * t) * 10 ** (-1.5 * t) * (t / 0.04).clamp(max=1)).unsqueeze(0)
    weak_attack = torch.where(t < 0.1, 0.25 * target, target)
    loud_tail = torch.where(t > 1.0, 4 * target, target)
    frames, level = LoudnessLoss(), LoudnessLoss(weighting="level")
    assert frames(weak_attack, target) < frames(loud_tail, target)
    assert level(weak_attack, target) > 2 * level(loud_tail, target)
    # A note's weights sum to one: at any level, twice as loud costs log(2), as it does unweighted.
    ref = torch.stack([_note(n=8000), 0.01 * _note(330.0, n=8000)])
    torch.testing.assert_close(level(2 * ref, ref), torch.tensor(math.log(2.0)))
    assert level(ref, ref).item() == 0.0
    # The weights are the target's: the output's gradient is that of a weighted L1.
    out = ref.clone().mul(0.5).requires_grad_(True)
    level(out, ref).backward()
    assert torch.isfinite(out.grad).all() and out.grad.abs().sum() > 0
    loss = build_loss("spectral + 0.05*loudness", loudness_weighting="level")
    assert loss.terms["loudness"].weighting == "level"
    with pytest.raises(ConfigError, match="train.loudness_weighting: 'onset' is not one of frames, level"):
        Config(train=TrainConfig(loss="spectral + 0.05*loudness", loudness_weighting="onset")).validate()


def test_near_silent_output_is_pushed_towards_the_target():
    """The silence trap: the paper's loss barely moves a near-silent output; mrstft and loudness do.

    At a near-silent output, log(1 + p) ~ p: the spectral term's gradient is proportional
    to the output's own bin amplitudes and vanishes with them, so a decoder that falls
    quiet early in training stays quiet (docs/training.md, Silence). The measure here is
    scale-free: ``||grad|| * ||output|| / loss``, the share of the loss that a change as
    large as the output itself removes to first order. It is about 1e-4 for the paper's
    term and about 0.2 to 0.3 for mrstft and loudness: three orders of magnitude.
    """
    torch.manual_seed(0)
    target = _tone()                                   # -28 dBFS RMS
    silent = 1e-4 * torch.randn_like(target)           # -80 dBFS of noise
    partials = (_power(target) > 1e-3 * _power(target).amax()).float()   # the target's bins within 30 dB

    def step(name):
        loss_fn = build_loss(name)
        out = silent.clone().requires_grad_(True)
        loss = loss_fn(out, target)
        grad, = torch.autograd.grad(loss, out)
        sensitivity = (grad.norm() * out.norm() / loss).item()
        # One gradient-descent step, half as large as the output.
        moved = silent - 0.5 * grad * (silent.norm() / grad.norm())
        return sensitivity, loss.item(), loss_fn(moved, target).item(), moved

    def rms(wav):
        return wav.square().mean().sqrt().item()

    def partial_energy(wav):
        return (_power(wav) * partials).sum().item()

    spectral, _, _, _ = step("spectral")
    for name in ("mrstft", "loudness"):
        sensitivity, before, after, moved = step(name)
        assert sensitivity > 0.1 and sensitivity > 300 * spectral, (name, sensitivity, spectral)
        assert after < 0.95 * before, name
        # The step puts energy where the target has its partials.
        assert partial_energy(moved) > 1.5 * partial_energy(silent), name
    # The paper's gradient points the right way too (the same half-size step raises the
    # partials as much); its size is what vanishes, and Adam's running second moment,
    # filled by the larger gradients of the loud start, turns it into steps of nothing.
    # loudness raises the level itself. mrstft does not here: against a sparse harmonic
    # target it also cuts the noise in the empty bins, which outweighs the partials' gain.
    _, _, _, louder = step("loudness")
    assert rms(louder) > 1.3 * rms(silent)
    assert spectral < 1e-3


@pytest.mark.parametrize("target_dbfs", [-28.0, -55.0])
def test_each_presets_training_loss_keeps_its_pull_at_a_near_silent_output(target_dbfs):
    """The silence trap, on the losses tiny, quick and small train with, phase by phase.

    A decoder output of noise at -80 dBFS, and again at -120 dBFS, against a loud note
    (-28 dBFS; the quick start's median note is -34.6) or a velocity-25 one (-55 dBFS). The paper's loss alone
    (``paper``) is the trap: its gradient shrinks with the output, a hundredfold here, so a
    decoder that has gone quiet stays quiet. Each training preset's own loss keeps its pull
    as the output goes quiet, and a step along it (a tenth of the note's size; up to it, with
    mrstft, below) lowers that
    loss and puts energy where the note's partials are. (The table1 preset's own loss is
    the paper's: its Table 1 runs set theirs, and its partials keep the spectral runs off
    silence.)

    A log-magnitude term (``mrstft``, quick's since its noise bands) floors each bin's power
    at ``train.mrstft_eps`` (1e-7: about -100 dBFS in its largest window, under 16-bit audio's
    floor): above it its pull is many times the other terms', under it it has none. For such a
    loss the terms without it must keep their pull as above, and the whole loss's pull at
    -120 dBFS must be no less than theirs: the term adds pull where it sees, and takes none away.
    """
    from sing_ray.losses import WeightedLoss

    torch.manual_seed(0)
    target = _tone(dbfs=target_dbfs)
    noise = torch.randn_like(target)
    partials = (_power(target) > 1e-3 * _power(target).amax()).float()

    def grad_at(loss_fn, out):
        out = out.clone().requires_grad_(True)
        loss = loss_fn(out, target)
        grad, = torch.autograd.grad(loss, out)
        return loss.item(), grad

    papers = build_loss(load_config("paper").train, phase="autoencoder")
    assert grad_at(papers, 1e-6 * noise)[1].norm() < 0.05 * grad_at(papers, 1e-4 * noise)[1].norm()
    for preset in ("tiny", "quick", "small"):
        train = load_config(preset).train
        for phase in ("autoencoder", "finetune"):
            where = (preset, phase, train.phase_loss(phase))
            loss_fn = build_loss(train, phase=phase)
            before, grad = grad_at(loss_fn, 1e-4 * noise)
            floored = {n: (loss_fn.weights[n], m) for n, m in loss_fn.terms.items() if n != "mrstft"}
            pulling = WeightedLoss(floored) if len(floored) < len(loss_fn.terms) else loss_fn
            quiet = grad_at(pulling, 1e-6 * noise)[1].norm()
            assert quiet > 0.5 * grad_at(pulling, 1e-4 * noise)[1].norm(), where
            assert grad_at(loss_fn, 1e-6 * noise)[1].norm() >= 0.99 * quiet, where
            # A step along the gradient lowers the loss and puts energy on the partials; the log
            # magnitudes of mrstft curve sharply at a quiet output, so the step is the best of a
            # few up to a tenth of the note's size (the losses without it take the tenth).
            steps = [1e-4 * noise - f * grad * (target.norm() / grad.norm()) for f in (0.1, 0.03, 0.01, 0.003)]
            moved = min(steps, key=lambda x: loss_fn(x, target).item())
            assert loss_fn(moved, target).item() < 0.95 * before, where
            assert (_power(moved) * partials).sum() > 1.5 * (_power(1e-4 * noise) * partials).sum(), where
            if pulling is loss_fn:
                assert loss_fn(steps[0], target).item() < 0.95 * before, where


def test_frame_loss_without_the_audible_term_is_the_papers_mse():
    from sing_ray.losses import FrameLoss
    out, target = torch.randn(2, 8, 5), torch.randn(2, 8, 5)
    torch.testing.assert_close(FrameLoss()(out, target), F.mse_loss(out, target))


def test_the_removed_level_term_is_refused_and_old_configs_with_it_load(caplog):
    """train.sequence_loudness (no preset used it) is gone: --set refuses it, a stored config's
    value (run qn64mC's 0.5) is dropped, with a warning."""
    from dataclasses import asdict

    from sing_ray.config import config_from_dict
    with pytest.raises(ConfigError, match="sequence_loudness.*removed"):
        load_config("quick", overrides=["train.sequence_loudness=0.1"])
    stored = asdict(load_config("quick"))
    stored["train"]["sequence_loudness"] = 0.0
    assert config_from_dict(stored) == load_config("quick")
    stored["train"]["sequence_loudness"] = 0.5
    assert config_from_dict(stored) == load_config("quick")
    assert "train.sequence_loudness (0.5) was removed" in caplog.text


def test_audible_term_weighs_a_short_attack_as_much_as_the_floor_around_it():
    """A struck note: a few audible bins among thousands at the floor. The audible term pulls
    them as hard as if they were the whole note; the floor bins get nothing from it."""
    from sing_ray.losses import AUDIBLE_DB, FrameLoss
    floor = math.log(1e-5) / 4.0                        # the encoder's floor, -100 dB
    target = torch.full((2, 64, 32), floor)
    target[:, 0, 2:6] = math.log(0.03) / 4.0            # the fundamental's attack, -30 dB, 4 frames
    out = torch.full_like(target, floor)                # the attack missed entirely
    out[:, 5, :] = floor + 0.1                          # and a floor bin a little off
    grads = {}
    for w in (0.0, 3.0):
        x = out.clone().requires_grad_(True)
        FrameLoss(w, 4.0)(x, target).backward()
        grads[w] = x.grad
    attack = grads[0.0][:, 0, 2:6].mean().item()
    assert attack < 0                                   # MSE pulls the attack up, weakly
    assert grads[3.0][:, 0, 2:6].mean().item() / attack > 500
    torch.testing.assert_close(grads[3.0][:, 5], grads[0.0][:, 5])   # the floor: MSE's pull alone
    # the threshold: a bin just above AUDIBLE_DB counts, one just under does not
    on = torch.full((1, 2, 1), floor)
    on[0, 0, 0] = (AUDIBLE_DB + 1) / (20 / math.log(10)) / 4.0
    on[0, 1, 0] = (AUDIBLE_DB - 1) / (20 / math.log(10)) / 4.0
    x = torch.zeros_like(on, requires_grad=True)
    (FrameLoss(1.0, 4.0)(x, on) - F.mse_loss(x, on)).backward()
    assert x.grad[0, 0, 0] > 0 and x.grad[0, 1, 0] == 0
    torch.testing.assert_close(FrameLoss(0.0, 4.0)(out, target), F.mse_loss(out, target))
    with pytest.raises(ConfigError, match="harmonic_frames"):
        load_config("tiny", overrides=["train.sequence_audible=1"])
    with pytest.raises(ConfigError, match="sequence_audible must be >= 0"):
        load_config("quick", overrides=["train.sequence_audible=-1"])
