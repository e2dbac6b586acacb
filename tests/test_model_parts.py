"""The model as parts (sing_ray/models): checkpoints from before the split load and play the same,
and each part keeps its promises."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sing_ray.checkpoint import load_model
from sing_ray.config import config_from_dict
from sing_ray.models import SING, Decoder
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
