"""The model as parts (sing_ray/models): checkpoints from before the split load and play the same,
and each part keeps its promises."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from sing_ray.checkpoint import load_checkpoint, load_model, make_checkpoint, save_checkpoint, sing_from_phases
from sing_ray.config import config_from_dict, load_config
from sing_ray.errors import UserError
from sing_ray.models import SING, Decoder, SequenceGenerator, build_sing
from sing_ray.models.legacy import upgrade_kwargs
from sing_ray.models.sing import autoencoder_kwargs

LEGACY = Path(__file__).parent / "fixtures" / "legacy_models"
# What each legacy kind is in today's terms (tests/fixtures/legacy_models/README.md).
KINDS = {"tiny": ("learnt", ("transposed_conv",)), "harmonic_noise": ("harmonic", ("partials", "noise")),
         "table1": ("learnt", ("transposed_conv", "partials"))}
PITCH = torch.tensor([48, 67])


def note(pitch: int, length: int = 64000) -> torch.Tensor:
    """The harmonic note with a faint inharmonic tone that the fixtures' expected audio was made of."""
    t = torch.arange(length, dtype=torch.float64) / 16000
    f0 = 440 * 2 ** ((pitch - 69) / 12)
    wav = sum(0.3 / k * torch.sin(2 * math.pi * k * f0 * t + k) for k in range(1, 12))
    wav = wav + 0.02 * torch.sin(2 * math.pi * 1234.5 * t) * torch.sin(2 * math.pi * 3.1 * t)
    return (wav * torch.exp(-t * 1.5)).float()


@pytest.fixture(scope="module")
def expected():
    return dict(np.load(LEGACY / "expected.npz"))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_sing_saved_before_the_parts_loads_and_plays_the_same(kind, expected):
    raw = torch.load(LEGACY / f"{kind}_sing.pt", weights_only=True)
    assert "heads" not in raw["kwargs"]                                   # written by the old code
    model, ckpt = load_model(LEGACY / f"{kind}_sing.pt")
    frames, heads = KINDS[kind]
    assert (ckpt["kwargs"]["frames"], ckpt["kwargs"]["heads"]) == (frames, heads)
    assert [name for name, _ in model.decoder.heads()] == list(heads)
    if "partials" in heads:                                               # the one key renamed
        assert "decoder.amplitudes.weight" in raw["state"] and "decoder.partials.weight" in ckpt["state"]
    with torch.inference_mode():
        wav = model.synthesize(torch.tensor([0, 2]), PITCH, torch.tensor([1, 4]))
    np.testing.assert_allclose(wav[:, ::32].numpy(), expected[f"{kind}_sing"], rtol=1e-5, atol=1e-6)
    # Its stored config reads in today's terms too.
    cfg = config_from_dict(ckpt["config"])
    assert (cfg.model.frames, cfg.model.heads) == (frames, heads)


@pytest.mark.parametrize("kind", ["tiny", "harmonic_noise"])
def test_an_autoencoder_saved_before_the_parts_loads_and_reconstructs_the_same(kind, expected):
    model, ckpt = load_model(LEGACY / f"{kind}_autoencoder.pt")
    wav = torch.stack([note(48), note(67)])
    with torch.inference_mode():
        frames = model.encode(wav, PITCH)
        out = model(wav, PITCH)
    np.testing.assert_allclose(frames[:, :, ::8].numpy(), expected[f"{kind}_frames"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, ::32].numpy(), expected[f"{kind}_autoencoder"], rtol=1e-5, atol=1e-6)
    # A run may take it as its phase 1 (``autoencoder_from``): its kwargs are what its config builds.
    assert ckpt["kwargs"] == autoencoder_kwargs(config_from_dict(ckpt["config"]).model)


def test_a_decoder_renames_the_old_keys_of_any_state_dict_it_loads():
    """Code that loads a raw old state dict (not through load_checkpoint) gets the key map too."""
    raw = torch.load(LEGACY / "table1_sing.pt", weights_only=True)
    model = SING(**upgrade_kwargs("SING", raw["kwargs"]))
    model.load_state_dict(raw["state"])
    torch.testing.assert_close(model.decoder.partials.weight, raw["state"]["decoder.amplitudes.weight"])
    decoder = Decoder(**{k: v for k, v in model.decoder.kwargs.items()})
    decoder.load_state_dict({k[len("decoder."):]: v for k, v in raw["state"].items() if k.startswith("decoder.")})
    torch.testing.assert_close(decoder.partials.bias, raw["state"]["decoder.amplitudes.bias"])


def test_old_kwargs_map_onto_parts_and_a_model_no_part_builds_is_refused():
    old = dict(dimension=8, channels=8, conv_synthesis=True, partials=4, clock_harmonics=0)
    assert upgrade_kwargs("Autoencoder", old) == dict(dimension=8, channels=8, partials=4, clock_harmonics=0,
                                                      frames="learnt", heads=("transposed_conv", "partials"),
                                                      noise_bands=0, sub_octaves=0)
    assert upgrade_kwargs("SequenceGenerator", {"dimension": 8}) == {"dimension": 8}
    new = upgrade_kwargs("Autoencoder", old)
    assert upgrade_kwargs("Autoencoder", new) == new
    with pytest.raises(ValueError, match="no longer built"):
        upgrade_kwargs("Autoencoder", {**old, "analysis_partials": 4})


def test_sing_is_assembled_from_its_phases_in_one_place(tmp_path):
    """sing_from_phases: phase 2's LSTM before phase 1's decoder, built from the checkpoints'
    own arguments as build_sing builds it (the same random draws), old checkpoints too."""
    ae, _ = load_model(LEGACY / "harmonic_noise_autoencoder.pt")
    cfg = config_from_dict(load_checkpoint(LEGACY / "harmonic_noise_sing.pt")["config"])
    torch.manual_seed(3)
    sequence = SequenceGenerator(num_instruments=3, dimension=24, hidden_size=8, num_layers=1, num_frames=265,
                                 phase_harmonics=4)
    seq_path = save_checkpoint(tmp_path / "sequence.pt", sequence, config=cfg, phase="sequence", epoch=1)
    torch.manual_seed(7)
    sing = sing_from_phases(seq_path, LEGACY / "harmonic_noise_autoencoder.pt")
    after_assembly = torch.rand(1)
    torch.manual_seed(7)
    build_sing(cfg.model, num_instruments=3)
    assert torch.equal(torch.rand(1), after_assembly)               # what follows draws the same numbers
    assert sing.kwargs == {**build_sing(cfg.model, num_instruments=3).kwargs}
    for key, value in sing.sequence.state_dict().items():
        assert torch.equal(value, sequence.state_dict()[key])
    for key, value in sing.decoder.state_dict().items():
        assert torch.equal(value, ae.decoder.state_dict()[key])
    # What it plays is the autoencoder's decoder on the LSTM's frames.
    symbols = (torch.tensor([0, 2]), PITCH, torch.tensor([1, 4]))
    with torch.inference_mode():
        torch.testing.assert_close(sing.eval()(*symbols), ae.decode(sequence(*symbols), PITCH), rtol=1e-5, atol=1e-6)
    assert sing_from_phases(make_checkpoint(sequence), make_checkpoint(ae)).kwargs == sing.kwargs
    with pytest.raises(UserError, match="not a SequenceGenerator"):
        sing_from_phases(LEGACY / "tiny_sing.pt", LEGACY / "tiny_autoencoder.pt")
    with pytest.raises(UserError, match="frames of 24 values"):
        sing_from_phases(seq_path, LEGACY / "tiny_autoencoder.pt")


def test_training_and_rendering_share_one_path():
    """Calling the model, its synthesize and a window of it are one computation."""
    torch.manual_seed(0)
    model = SING(num_instruments=2, dimension=8, channels=8, hidden_size=8, num_layers=1, heads=("partials", "noise"),
                 partials=4, noise_bands=4).eval()
    symbols = (torch.tensor([0, 1]), torch.tensor([50, 70]), torch.tensor([0, 3]))
    with torch.inference_mode():
        whole = model(*symbols)
        assert torch.equal(model.synthesize(*symbols), whole)
        assert torch.equal(model(*symbols, span=(0, 64000)), whole)
        frames = torch.randn(2, 8, 40)
        assert torch.equal(model.decoder(frames, symbols[1]),
                           model.decoder.synthesize(frames.transpose(1, 2), pitch=symbols[1]))


def _paper_formula(k: dict) -> float:
    """The FLOPs of a note as ``sing-ray bench render`` counted them before the parts did: right
    for the paper's decoder (the transposed conv alone)."""
    stride, kernel, context = k["stride"], k["kernel_size"], k["context_size"]
    num_frames = (k["wav_length"] + 2 * k["pad"] - kernel) // stride + 1
    first = max(0, (k["pad"] - kernel) // stride + 1)
    last = min(num_frames - 1, (k["pad"] + k["wav_length"] - 1) // stride)
    steps = min(num_frames, last + context // 2 + 1)
    hidden, layers, dim, channels = k["hidden_size"], k["num_layers"], k["dimension"], k["channels"]
    inputs = k["velocity_dim"] + k["instrument_dim"] + k["pitch_dim"] + k["time_dim"] + 2 * k["phase_harmonics"]
    lstm = sum(2 * 4 * hidden * ((inputs if layer == 0 else hidden) + hidden) for layer in range(layers))
    per_frame = 2 * dim * context * channels + k["rewrite_layers"] * 2 * channels * channels + 2 * channels * kernel
    return float(steps * (lstm + 2 * hidden * dim) + (last - first + 1) * per_frame)


def test_the_flops_of_a_note_come_from_its_parts():
    """Each part counts its own products (the noise head also its inverse FFT): what torch's
    FlopCounterMode counts of the decoder, for every head; the paper's count as before."""
    paper = load_config("paper").model
    with torch.device("meta"):
        sing = build_sing(paper, num_instruments=1006)
    assert sing.flops_per_note() == _paper_formula(sing.kwargs)
    for heads, extra in [(("transposed_conv",), {}), (("transposed_conv", "partials"), dict(partials=6)),
                         (("partials", "noise"), dict(partials=6, noise_bands=8, frames="harmonic")),
                         (("partials", "noise"), dict(partials=6, noise_bands=8, frames="harmonic", noise_scale="pitch"))]:
        dimension = 14 if "noise" in heads else 8
        decoder = Decoder(dimension=dimension, channels=16, heads=heads, clock_harmonics=2, **extra)
        with FlopCounterMode(display=False) as counter:
            decoder.synthesize(torch.randn(2, 30, dimension), pitch=torch.tensor([60, 61]))
        fft = 2.5 * 1024 * 10 if "noise" in heads else 0.0
        assert decoder.flops_per_frame() == counter.get_total_flops() / (2 * 30) + fft, heads
    # The quick preset's frame costs its partials' and noise's windows, not a transposed conv's.
    quick = build_sing(load_config("quick").model, num_instruments=2)
    per_frame = quick.decoder.flops_per_frame()
    assert per_frame == sum(h.flops_per_frame() for _, h in quick.decoder.heads()) + (
        2 * 128 * 9 * 256 + 2 * 2 * 256 * 256)


def test_the_render_bench_counts_a_checkpoints_flops_from_its_parts(tmp_path):
    from sing_ray.commands.bench_render import flops_per_note

    cfg = load_config("tiny", overrides=["model.heads=partials,noise", "model.frames=harmonic", "model.partials=16",
                                         "model.noise_bands=16"])
    model = build_sing(cfg.model, num_instruments=2)
    path = save_checkpoint(tmp_path / "sing.pt", model, config=cfg, phase="finetune", epoch=0,
                           extra={"instruments": ["a", "b"]})
    assert flops_per_note(path) == model.flops_per_note() > 0
