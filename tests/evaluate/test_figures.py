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


def _tones(pitches, scale=1.0):
    """(K, 64000) float32 harmonic tones at the MIDI pitches, decaying."""
    t = np.arange(64000) / 16000
    f0 = 440.0 * 2 ** ((np.asarray(pitches, dtype=np.float64)[:, None] - 69) / 12)
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5)) * np.exp(-t)
    return (0.2 * scale * wave).astype(np.float32)


def _image_titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.images]


def test_spectrogram_grid_puts_the_nearest_key_beside_real_and_generated():
    from sing_ray.timbre import timbre_metrics

    pitches = [57, 64, 69, 60]
    real, generated = _tones(pitches), _tones(pitches, 0.5)
    nearest = _tones([55, 62, 69, 62])
    names = ["guitar_acoustic_000-057-127", "guitar_acoustic_000-064-127", "flute_synthetic_001-069-127",
             "flute_synthetic_001-060-025"]
    families = ["guitar", "guitar", "flute", "flute"]
    # Without the nearest key: two panels a note.
    two = figures.spectrogram_grid_figure(real, generated, names, families, pitches)
    assert len(_image_titles(two)) == 2 * 4
    # With it: three a note, but the third note has none (its panel says so, no image).
    fig = figures.spectrogram_grid_figure(real, generated, names, families, pitches, nearest, [55, 62, None, 62])
    titles = _image_titles(fig)
    assert len(titles) == 3 * 4 - 1
    assert [t.split("\n")[0] for t in titles[:3]] == ["real · pitch 57", "generated", "nearest key · from 55"]
    assert "nearest key\nnone" in [ax.get_title() for ax in fig.axes]
    # Each generated and nearest-key panel carries its long-term spectrum distance to the real note.
    gen_lts = timbre_metrics(generated, real)["lts_db"]
    near_lts = timbre_metrics(nearest, real)["lts_db"]
    assert titles[1] == f"generated\nlts {gen_lts[0]:.1f} dB" and abs(gen_lts[0] - 6.0) < 0.1
    assert titles[2] == f"nearest key · from 55\nlts {near_lts[0]:.1f} dB"
    assert "nearest key (sampler)" in fig._suptitle.get_text()
    figures._pyplot().close(fig)
    figures._pyplot().close(two)
    with pytest.raises(ValueError, match="nearest-key"):
        figures.spectrogram_grid_figure(real, generated, names, families, pitches, nearest[:2], [55, 62])


def test_sheet_draws_the_scored_notes_nearest_keys(tmp_path, monkeypatch):
    from sing_ray.evaluate import draw_spectrogram_sheet

    pitches = np.array([48, 52, 60])
    notes = {"note_str": np.array([f"keyboard_acoustic_000-{p:03d}-127" for p in pitches]),
             "instrument_str": np.array(["keyboard_acoustic_000"] * 3),
             "instrument_family_str": np.array(["keyboard"] * 3), "pitch": pitches, "velocity": np.array([127] * 3),
             "nk_note_str": np.array(["keyboard_acoustic_000-050-127", "", "keyboard_acoustic_000-059-127"],
                                     dtype=object),
             "nk_semitones": np.array([-2.0, np.nan, 1.0])}
    audio = {"real": _tones(pitches), "generated": _tones(pitches, 0.5), "nearest": _tones(pitches, 0.9)}
    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or path)
    assert draw_spectrogram_sheet(b"", notes, "unused", "test", tmp_path / "s.png", 1, 3, audio=audio) == \
        tmp_path / "s.png"
    titles = _image_titles(drawn[0])
    assert len(titles) == 3 + 2 + 3          # the second note has no nearest key
    assert titles[2].startswith("nearest key · from 50\n") and titles[-1].startswith("nearest key · from 59\n")
    assert titles[-1].endswith(" dB")
    # Scored without the nearest key (no nk_ columns): two panels a note.
    drawn.clear()
    plain = {k: v for k, v in notes.items() if not k.startswith("nk_")}
    draw_spectrogram_sheet(b"", plain, "unused", "test", tmp_path / "s.png", 1, 3, audio=audio)
    assert len(_image_titles(drawn[0])) == 6
    figures._pyplot().close("all")
