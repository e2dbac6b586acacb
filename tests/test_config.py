from dataclasses import asdict

import pytest

from sing_ray.config import ConfigError, config_from_dict, flatten, load_config


def test_presets_resolve_and_round_trip():
    for name in ("paper", "small", "tiny"):
        cfg = load_config(name)
        assert config_from_dict(asdict(cfg)) == cfg
    paper = load_config("paper")
    assert (paper.model.hidden_size, paper.model.num_layers, paper.model.channels) == (1024, 3, 4096)
    assert [paper.train.phase(p).epochs for p in ("autoencoder", "sequence", "finetune")] == [50, 50, 20]
    assert paper.train.autoencoder.lr == 3e-4 and paper.train.autoencoder.batch_size == 64


def test_overrides_and_their_errors(tmp_path):
    cfg = load_config("tiny", overrides=["train.loss=wav", "model.time_dim=0", "train.sequence.epochs=7"])
    assert (cfg.train.loss, cfg.model.time_dim, cfg.train.sequence.epochs) == ("wav", 0, 7)
    assert flatten(cfg)["train.sequence.epochs"] == 7
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        load_config("huge")
    with pytest.raises(ConfigError, match="did you mean channels"):
        load_config("tiny", overrides=["model.chanels=3"])
    with pytest.raises(ConfigError, match="expected int"):
        load_config("tiny", overrides=["model.channels=many"])
    with pytest.raises(ConfigError, match="train.loss"):
        load_config("tiny", overrides=["train.loss=cosine"])
    with pytest.raises(ConfigError, match="multiple of run.num_workers"):
        load_config("tiny", overrides=["run.num_workers=3"])
    with pytest.raises(ConfigError, match="multiple of stride"):
        load_config("tiny", overrides=["model.pad=100"])
    bad = tmp_path / "c.yaml"
    bad.write_text("model: {depth: 3}\n")
    with pytest.raises(ConfigError, match="model.depth"):
        load_config("tiny", path=bad)
