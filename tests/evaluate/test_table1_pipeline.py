"""pipelines.reproduce_table1 at its smallest scale: three tiny runs, all five rows."""
import json
import math

import pytest

from sing_ray import table1
from sing_ray.data.ingest import ingest

from conftest import make_nsynth

pytestmark = pytest.mark.slow


def test_smallest_table1_has_five_rows(tmp_path, ray_local, monkeypatch):
    from pipelines import reproduce_table1

    monkeypatch.chdir(tmp_path)
    # 2 instruments x 14 pitches x 1 velocity = 28 notes: 20 train, 2 valid, 6 test.
    make_nsynth(tmp_path / "src", pitches=range(44, 58), velocities=(127,))
    ingest(str(tmp_path / "src"), str(tmp_path / "ds"), progress=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = reproduce_table1.main([
        "--dataset", str(tmp_path / "ds"), "--preset", "tiny", "--out", str(tmp_path / "t1"),
        "--tracking-uri", uri, "--name", "smoke",
        "--set", "train.autoencoder.epochs=1", "--set", "train.sequence.epochs=1",
        "--set", "train.finetune.epochs=1"])
    assert code == 0
    data = json.loads((tmp_path / "t1" / "table1.json").read_text())
    for row in table1.ROWS:
        values = data["rows"][row.key]
        assert all(math.isfinite(v) and v >= 0 for m in ("spectral_l1", "wav_mse") for v in values[m]), row.key
    assert len(data["orderings"]) == len(table1.ORDERINGS)
    assert all(v > 0 for v in data["silence"]["wav_mse"] + data["silence"]["spectral_l1"])
    assert all(o["held"] in (True, False) for o in data["orderings"])
    text = (tmp_path / "t1" / "table1.md").read_text()
    assert "| SING (no time embedding) | spectral |" in text and "0.050 | 0.063" in text

    # The three runs are nested under the table's MLflow run, and the ablation has no time table.
    import mlflow

    client = mlflow.MlflowClient(uri)
    parent = data["meta"]["MLflow run"]
    children = client.search_runs([client.get_run(parent).info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    assert {r.info.run_name for r in children} == {"smoke-wav", "smoke-spectral", "smoke-spectral_notime"}
    notime = next(r for r in children if r.info.run_name == "smoke-spectral_notime")
    assert notime.data.params["model.time_dim"] == "0"
    # The ablation differs from SING by the time embedding alone: it took the spectral run's
    # autoencoder and embeddings rather than training its own.
    runs = tmp_path / "t1" / "runs"
    assert notime.data.tags["sing_ray.autoencoder_from"] == str(runs / "smoke-spectral")
    assert (runs / "smoke-spectral_notime" / "models" / "autoencoder.pt").read_bytes() == \
        (runs / "smoke-spectral" / "models" / "autoencoder.pt").read_bytes()
    assert not (runs / "smoke-spectral_notime" / "autoencoder").exists()
    assert (runs / "smoke-spectral_notime" / "embeddings" / "train" / "_SUCCESS").exists()

    # The end-of-phase scores the table shows agree with scoring the checkpoint here.
    ckpt = tmp_path / "t1" / "runs" / "smoke-spectral" / "models" / "finetune.pt"
    rescored = table1.score_rows({"sing_spectral": ckpt}, str(tmp_path / "ds"))["sing_spectral"]
    assert rescored["spectral_l1"] == pytest.approx(tuple(data["rows"]["sing_spectral"]["spectral_l1"]), rel=1e-3)
    assert rescored["wav_mse"] == pytest.approx(tuple(data["rows"]["sing_spectral"]["wav_mse"]), rel=1e-3)
