"""Figures: PNGs are written and their inputs are read the way the figures claim."""
import mlflow
import numpy as np
import pytest

from sing_ray import figures


def _is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000


def test_pca_recovers_the_main_axis():
    rng = np.random.default_rng(0)
    t = rng.normal(size=50)
    x = np.stack([3 * t, -3 * t, 0.01 * rng.normal(size=50)], axis=1)
    coords = figures.pca_2d(x)
    assert coords.shape == (50, 2)
    assert abs(np.corrcoef(coords[:, 0], t)[0, 1]) > 0.999


@pytest.mark.parametrize("count, method", [(6, "PCA"), (24, "t-SNE")])
def test_instrument_embeddings_plot(tmp_path, count, method):
    pytest.importorskip("sklearn") if method == "t-SNE" else None
    names = [f"{fam}_acoustic_{i:03d}" for i, fam in
             zip(range(count), ["guitar", "flute", "synth_lead", "brass"] * count)]
    table = np.random.default_rng(0).normal(size=(count, 16))
    assert figures.project_2d(table)[1] == method
    path = figures.plot_instrument_embeddings(table, names, tmp_path / "emb.png")
    assert _is_png(path)
    assert figures.family_of("synth_lead_synthetic_003") == "synth_lead"


def test_grid_notes_spread_over_pitches_and_families():
    notes = {
        "note_str": np.array([f"n{i:02d}" for i in range(12)]),
        "instrument_family_str": np.array(["flute"] * 8 + ["brass"] * 4),
        "pitch": np.array([40, 40, 50, 60, 70, 80, 90, 100, 60, 60, 62, 64]),
        "velocity": np.array([25, 127, 100, 100, 100, 100, 100, 100, 25, 50, 100, 100]),
    }
    chosen = figures.choose_grid_notes(notes, max_families=2, max_pitches=4)
    # flute first (most notes): lowest pitch at its loudest velocity, then spread up to 100.
    assert chosen[:4] == ["n01", "n03", "n05", "n07"]
    assert chosen[4:] == ["n09", "n10", "n11"]


def test_training_curves_from_mlflow_phases(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("curves")
    with mlflow.start_run(run_name="train") as parent:
        for phase in ("finetune", "autoencoder", "sequence"):
            with mlflow.start_run(run_name=phase, nested=True):
                mlflow.set_tag("phase", phase)
                for epoch in range(3):
                    mlflow.log_metric("train_loss", 1.0 / (epoch + 1), step=epoch)
    histories = figures.load_training_histories(parent.info.run_id, uri)
    assert list(histories) == ["autoencoder", "sequence", "finetune"]
    assert histories["sequence"]["train_loss"] == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert _is_png(figures.plot_training_curves(parent.info.run_id, tmp_path / "curves.png", uri))


def test_training_run_found_from_checkpoint_folder_and_run_uri(tmp_path):
    from sing_ray.evaluate import find_training_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("find")
    run_dir = tmp_path / "runs" / "r1"
    with mlflow.start_run(run_name="r1", tags={"sing_ray.run_dir": str(run_dir)}) as parent:
        with mlflow.start_run(run_name="finetune", nested=True, tags={"sing_ray.phase": "finetune"}) as phase:
            pass
    assert find_training_run(str(run_dir / "models" / "finetune.pt"), uri) == parent.info.run_id
    assert find_training_run(f"runs:/{phase.info.run_id}/sing", uri) == parent.info.run_id
    assert find_training_run(f"runs:/{parent.info.run_id}/sing", uri) == parent.info.run_id
    assert find_training_run(str(tmp_path / "elsewhere" / "models" / "x.pt"), uri) is None
