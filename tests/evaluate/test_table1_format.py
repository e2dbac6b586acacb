"""Table 1's layout, the paper's figures and the ordering checks (no training)."""
import json

import pytest

from sing_ray import table1


def test_the_papers_own_numbers_show_its_orderings():
    checks = table1.check_orderings(table1.PAPER)
    by_claim = {c["claim"]: c for c in checks}
    spectral = by_claim["spectral loss beats waveform loss for SING (test spectral L1)"]
    assert spectral["paper"] == (0.051, 0.084) and spectral["paper_held"] is True
    time_emb = by_claim["the time embedding helps (test spectral L1)"]
    assert time_emb["paper"] == (0.051, 0.063) and time_emb["paper_held"] is True
    assert all(c["held"] == c["paper_held"] is True for c in checks)


def test_three_runs_give_five_rows():
    assert {r.run for r in table1.ROWS} == set(table1.RUNS) and len(table1.ROWS) == 5
    assert table1.run_overrides("spectral_notime", ["train.finetune.epochs=1"]) == [
        "train.finetune.epochs=1", "train.loss=spectral", "train.spectral_distance=l1", "train.log_offset=1.0",
        "model.time_dim=0"]
    with pytest.raises(ValueError):
        table1.run_overrides("mel", [])


def test_table_shows_ours_beside_the_paper_and_flags_broken_orderings(tmp_path):
    results = {
        "ae_wav": {"spectral_l1": (0.5, 0.6), "wav_mse": (0.001, 0.002)},
        "sing_wav": {"spectral_l1": (0.9, 1.0), "wav_mse": (0.01, 0.02)},
        "sing_spectral": {"spectral_l1": (1.1, 1.2), "wav_mse": (0.02, 0.03)},   # worse than wav: broken
    }
    text = table1.format_table(results, {"preset": "tiny"})
    lines = text.splitlines()
    assert lines[0] == "- preset: tiny"
    assert "| Autoencoder | waveform | 0.5000 | 0.6000 | 0.026 | 0.028 | 0.00100 | 0.00200 | 0.0002 | 0.0003 |" in text
    assert "| SING (no time embedding) | spectral | – | – | 0.050 | 0.063 | – | – | – | – |" in text
    row = next(l for l in lines if l.startswith("| spectral loss beats waveform loss for SING"))
    assert "1.2000 ≥ 1.0000" in row and row.endswith("| **no** |")
    row = next(l for l in lines if l.startswith("| the time embedding helps"))
    assert row.endswith("| – | – |")                       # no-time row missing: not judged
    paths = table1.write_table(results, tmp_path, {"preset": "tiny"})
    data = json.loads(paths["json"].read_text())
    assert data["rows"]["sing_wav"]["spectral_l1"] == [0.9, 1.0]
    assert data["paper"]["ae_spectral"]["wav_mse"] is None
    assert [c["held"] for c in data["orderings"]][:2] == [False, None]


def test_rows_that_collapsed_to_silence_are_flagged():
    silence = {"spectral_l1": (0.0434, 0.0393), "wav_mse": (0.0019, 0.0019)}
    results = {
        table1.SILENCE: silence,
        "sing_wav": {"spectral_l1": (0.0376, 0.0397), "wav_mse": (0.0011, 0.0023)},
        "sing_spectral": {"spectral_l1": (0.04340001, 0.03930002), "wav_mse": (0.0019, 0.0019)},
        "sing_spectral_notime": {"spectral_l1": (0.0300, 0.0393), "wav_mse": (0.001, 0.002)},  # train differs
    }
    assert table1.silent_rows(results) == ["sing_spectral"]
    text = table1.format_table(results)
    assert "| SING **[outputs silence]** | spectral |" in text
    assert "| *silence (all-zero output), baseline* | – | 0.0434 | 0.0393 |" in text
    row = next(l for l in text.splitlines() if l.startswith("| spectral loss beats waveform loss for SING"))
    # 0.0393 < 0.0397 "holds", but only because the spectral model is silent.
    assert "yes (vacuous: sing_spectral outputs silence)" in row
