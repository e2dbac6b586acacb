import pytest
import torch

from sing_ray.checkpoint import load_checkpoint, load_model, save_checkpoint
from sing_ray.config import load_config
from sing_ray.errors import UserError
from sing_ray.models import build_sing


def test_round_trip_gives_identical_output(tmp_path):
    cfg = load_config("tiny")
    torch.manual_seed(0)
    model = build_sing(cfg.model, num_instruments=4).eval()
    path = save_checkpoint(tmp_path / "ck.pt", model, config=cfg, phase="finetune", epoch=3,
                           extra={"instruments": ["a", "b", "c", "d"]})
    raw = torch.load(path, weights_only=True)  # no pickled modules inside
    assert raw["class"] == "SING" and raw["phase"] == "finetune" and raw["epoch"] == 3
    assert raw["config"]["model"]["channels"] == cfg.model.channels
    again, ckpt = load_model(path)
    args = (torch.tensor([1, 3]), torch.tensor([60, 72]), torch.tensor([0, 4]))
    with torch.no_grad():
        assert torch.equal(model(*args), again(*args))
    assert ckpt["extra"]["instruments"][3] == "d"
    assert not list(tmp_path.glob(".*tmp*"))


def test_foreign_or_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(UserError, match="not a sing-ray checkpoint"):
        load_checkpoint(other)
