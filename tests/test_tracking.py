import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from sing_ray.checkpoint import save_checkpoint
from sing_ray.config import load_config
from sing_ray.errors import UserError
from sing_ray.generate import Generator
from sing_ray.models import build_sing
from sing_ray.tracking import configure_mlflow, log_sing_model, resolve_model


@pytest.fixture
def tiny_checkpoint(tmp_path):
    cfg = load_config("tiny")
    torch.manual_seed(0)
    model = build_sing(cfg.model, num_instruments=2)
    return save_checkpoint(tmp_path / "sing.pt", model, config=cfg, phase="finetune", epoch=1,
                           extra={"instruments": ["guitar_acoustic_000", "flute_synthetic_001"]})


def test_registered_model_resolves_and_generates(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = configure_mlflow(f"sqlite:///{tmp_path / 'mlflow.db'}", "test")
    with mlflow.start_run():
        info = log_sing_model(tiny_checkpoint)
    version = max(int(v.version) for v in mlflow.MlflowClient(uri).search_model_versions("name='sing'"))
    path = resolve_model(f"models:/sing/{version}", uri)
    gen = Generator.from_checkpoint(path)
    direct = Generator.from_checkpoint(tiny_checkpoint).generate(["flute_synthetic_001"], [60], [100])
    assert np.array_equal(gen.generate(["flute_synthetic_001"], [60], [100]), direct)
    pyfunc = mlflow.pyfunc.load_model(info.model_uri)
    out = pyfunc.predict(pd.DataFrame({"instrument": ["guitar_acoustic_000"], "pitch": [64], "velocity": [25]}))
    assert out.shape == (1, 64000) and out.dtype == np.float32


def test_logged_model_has_a_signature_an_example_and_plays_mixes(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = configure_mlflow(f"sqlite:///{tmp_path / 'mlflow.db'}", "test")
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("test")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"   # the UI's training view
    with mlflow.start_run():
        info = log_sing_model(tiny_checkpoint)
    registered = mlflow.models.get_model_info("models:/sing/1")
    inputs = {c["name"]: (c["type"], c.get("required", True)) for c in registered.signature.inputs.to_dict()}
    assert inputs == {"instrument": ("string", True), "pitch": ("long", True), "velocity": ("long", True),
                      "mix": ("string", False)}
    assert registered.signature.outputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 64000)
    example = mlflow.models.Model.load(info.model_uri).load_input_example(mlflow.artifacts.download_artifacts(info.model_uri))
    assert list(example.columns) == ["instrument", "pitch", "velocity"]
    assert example["instrument"][0] == "guitar_acoustic_000"
    pyfunc = mlflow.pyfunc.load_model(info.model_uri)
    rows = pd.DataFrame({"instrument": ["flute_synthetic_001", "guitar_acoustic_000"], "pitch": [60, 60],
                         "velocity": [100, 100], "mix": [None, "guitar_acoustic_000:1,flute_synthetic_001:1"]})
    out = pyfunc.predict(rows)
    gen = Generator.from_checkpoint(tiny_checkpoint)
    assert np.array_equal(out[0], gen.generate(["flute_synthetic_001"], [60], [100])[0])
    half = gen.generate([0], [60], [100], mix={"guitar_acoustic_000": 0.5, "flute_synthetic_001": 0.5})[0]
    np.testing.assert_allclose(out[1], half, atol=1e-6)
    with pytest.raises(Exception, match="pitch"):          # the signature refuses a row without a pitch
        pyfunc.predict(pd.DataFrame({"instrument": ["flute_synthetic_001"], "velocity": [100]}))


def test_generator_rejects_bad_requests(tiny_checkpoint):
    gen = Generator.from_checkpoint(tiny_checkpoint)
    with pytest.raises(UserError, match="close matches: guitar_acoustic_000"):
        gen.generate(["guitar_acoustic_00"], [60], [100])
    with pytest.raises(UserError, match="pitch 130"):
        gen.generate([0], [130], [100])
    with pytest.raises(UserError, match="velocity 64"):
        gen.generate([0], [60], [64])
    mixed = gen.generate([0], [60], [100], mix={"guitar_acoustic_000": 0.5, "flute_synthetic_001": 0.5})
    assert mixed.shape == (1, 64000)
    with pytest.raises(UserError, match="no such checkpoint"):
        resolve_model("nowhere.pt")
