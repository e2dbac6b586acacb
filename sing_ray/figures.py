"""Figures of a trained SING, as PNG files (matplotlib's Agg backend: no display needed).

- :func:`plot_instrument_embeddings`: the instrument lookup table in 2-D, coloured by family
  (the paper's t-SNE figure; PCA when t-SNE is unavailable or there are too few instruments).
- :func:`plot_spectrogram_grid`: real beside generated (and nearest-key sampler) log-power
  spectrograms across families (rows) and pitches (columns), each titled with its long-term
  spectrum distance to the real note.
- :func:`plot_training_curves`: the metric histories of the three phases, read from MLflow.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from .config import PHASES
from .errors import UserError
from .nsynth import FAMILIES, SAMPLE_RATE

log = logging.getLogger(__name__)

DYNAMIC_RANGE_DB = 80.0         # spectrogram colour range below the figure's loudest bin
# t-SNE needs clearly more points than its perplexity to say anything; below this, PCA.
MIN_TSNE_POINTS = 20


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    tmp.replace(path)
    return path


def family_of(instrument_str: str) -> str:
    """``guitar_acoustic_010`` -> ``guitar`` (family names may hold underscores: synth_lead)."""
    stem = instrument_str.rsplit("_", 2)[0]
    return stem if stem in FAMILIES else instrument_str.split("_")[0]


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Project rows of ``x`` (N, D) on their first two principal components. Returns (N, 2)."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(0)
    if len(x) < 2:
        return np.zeros((len(x), 2))
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    proj = centred @ vt[:2].T
    return np.pad(proj, ((0, 0), (0, 2 - proj.shape[1])))


def project_2d(x: np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D coordinates of embeddings by t-SNE or PCA.

    Args:
        x: (N, D) embeddings.
        method: ``tsne``, ``pca`` or ``auto`` (t-SNE from scikit-learn when installed and
            N >= MIN_TSNE_POINTS, else PCA).
    Returns:
        ((N, 2) coordinates, the method used).
    """
    if method not in ("auto", "tsne", "pca"):
        raise ValueError(f"unknown projection {method!r}; expected auto, tsne or pca")
    if method in ("auto", "tsne") and len(x) >= MIN_TSNE_POINTS:
        try:
            from sklearn.manifold import TSNE
        except ImportError:
            if method == "tsne":
                raise UserError("t-SNE needs scikit-learn, which is not installed; use PCA") from None
        else:
            perplexity = float(min(30.0, (len(x) - 1) / 3))
            # Exact t-SNE is quicker than Barnes-Hut (and its thread pool) below a few hundred points.
            coords = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                          method="exact" if len(x) <= 500 else "barnes_hut").fit_transform(
                np.asarray(x, dtype=np.float64))
            return coords, "t-SNE"
    return pca_2d(x), "PCA"


def plot_instrument_embeddings(model, instruments: Sequence[str], path: str | Path,
                               method: str = "auto") -> Path:
    """The SING instrument table (``model.sequence.instrument``) in 2-D, coloured by family.

    Args:
        model: a SING (or its instrument table as an array (N, instrument_dim)).
        instruments: names of the N rows, ``<family>_<source>_<NNN>``.
        path: the PNG to write.
    Returns:
        the path.
    """
    if isinstance(model, torch.nn.Module):
        table = model.sequence.instrument
        if table is None:
            raise UserError("this model has no instrument table (instrument_dim=0)")
        weights = table.weight.detach().cpu().numpy()
    else:
        weights = np.asarray(model)
    if len(weights) != len(instruments):
        raise ValueError(f"{len(weights)} table rows for {len(instruments)} instrument names")
    coords, used = project_2d(weights, method)
    families = [family_of(s) for s in instruments]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    cmap = plt.get_cmap("tab20")
    for fam in sorted(set(families)):
        idx = [i for i, f in enumerate(families) if f == fam]
        colour = cmap(FAMILIES.index(fam) % 20 if fam in FAMILIES else 19)
        ax.scatter(coords[idx, 0], coords[idx, 1], s=28, color=colour, label=f"{fam} ({len(idx)})",
                   edgecolors="none", alpha=0.85)
    if len(instruments) <= 24:
        for (x, y), name in zip(coords, instruments):
            ax.annotate(name, (x, y), fontsize=6, alpha=0.7, xytext=(3, 3), textcoords="offset points")
    ax.set_title(f"Instrument embeddings ({weights.shape[1]}-d) by {used}, coloured by family")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, loc="best", frameon=False)
    return _save(fig, path)


def choose_grid_notes(notes: Mapping[str, np.ndarray], max_families: int = 4, max_pitches: int = 4) -> list[str]:
    """Notes for the spectrogram grid: the families with most notes, pitches spread low to high.

    Within a family the notes are sorted by pitch and taken at evenly spaced ranks, one per
    distinct pitch, preferring the loudest velocity (the clearest spectrogram).

    Args:
        notes: per-note columns with ``note_str``, ``instrument_family_str``, ``pitch``, ``velocity``.
    Returns:
        note_strs, family by family (rows), low to high pitch (columns).
    """
    fams = np.asarray(notes["instrument_family_str"]).astype(str)
    names = np.asarray(notes["note_str"]).astype(str)
    pitch = np.asarray(notes["pitch"]).astype(int)
    velocity = np.asarray(notes["velocity"]).astype(int)
    counts = {f: int((fams == f).sum()) for f in set(fams)}
    chosen: list[str] = []
    for fam in sorted(counts, key=lambda f: (-counts[f], f))[:max_families]:
        idx = np.flatnonzero(fams == fam)
        best: dict[int, int] = {}
        for i in idx:   # one note per pitch: the loudest, then the first by name
            j = best.get(pitch[i])
            if j is None or (velocity[i], names[j]) > (velocity[j], names[i]):
                best[pitch[i]] = i
        by_pitch = [best[p] for p in sorted(best)]
        ranks = np.unique(np.linspace(0, len(by_pitch) - 1, min(max_pitches, len(by_pitch))).round().astype(int))
        chosen += [names[by_pitch[r]] for r in ranks]
    return chosen


def spectrogram_grid_figure(real: np.ndarray, generated: np.ndarray, labels: Sequence[str],
                            families: Sequence[str] | None = None, pitches: Sequence[int] | None = None,
                            nearest: np.ndarray | None = None, nearest_pitches: Sequence[int | None] | None = None,
                            n_fft: int = 1024, hop_length: int = 256, sample_rate: int = SAMPLE_RATE):
    """The figure of :func:`plot_spectrogram_grid`, not yet saved (a matplotlib ``Figure``).

    Each note gets a group of panels: real | generated, and with ``nearest`` a third, the
    nearest-key sampler's note (the training note it stretches, resampled to the pitch). The
    generated and nearest-key panels carry their long-term spectrum distance to the real note
    (:func:`sing_ray.timbre.timbre_metrics`' ``lts_db``) in their titles.

    Args:
        real, generated: (K, T) waveforms, in the same order as ``labels``.
        labels: K note names, written on each note's real panel.
        families: K family names (rows); None puts each note on its own row.
        pitches: K MIDI pitches (for the titles).
        nearest: (K, T) the nearest key's notes, shifted to each note's pitch; None: two panels a note.
        nearest_pitches: K source pitches of the nearest keys, None for a note without one
            (its panel says so instead of showing ``nearest``'s row).
    Returns:
        the figure; its image panels are ``K x (2 or 3)``, titled ``real``, ``generated`` and
        ``nearest key`` (a missing nearest key's panel holds no image).
    """
    from .dsp import stft_magnitude
    from .timbre import timbre_metrics

    real, generated = np.asarray(real, dtype=np.float32), np.asarray(generated, dtype=np.float32)
    if real.shape != generated.shape or len(real) != len(labels) or len(real) == 0:
        raise ValueError(f"need K real and K generated notes with K labels, got {real.shape}, "
                         f"{generated.shape}, {len(labels)}")
    waves = [real, generated]
    if nearest is not None:
        nearest = np.asarray(nearest, dtype=np.float32)
        nearest_pitches = list(nearest_pitches) if nearest_pitches is not None else [None] * len(real)
        if nearest.shape != real.shape or len(nearest_pitches) != len(real):
            raise ValueError(f"need K nearest-key notes and K source pitches, got {nearest.shape}, "
                             f"{len(nearest_pitches)}")
        waves.append(nearest)
    per_note = len(waves)
    families = list(families) if families is not None else [str(i) for i in range(len(real))]
    rows = list(dict.fromkeys(families))
    cells: dict[str, list[int]] = {r: [i for i, f in enumerate(families) if f == r] for r in rows}
    ncols = max(len(v) for v in cells.values())

    def db(wav: np.ndarray) -> np.ndarray:
        power = stft_magnitude(torch.from_numpy(wav), n_fft, hop_length).double().square().numpy()
        return 10 * np.log10(power + 1e-10)

    specs = [db(wav) for wav in waves]
    lts = [None] + [timbre_metrics(wav, real, sample_rate)["lts_db"] for wav in waves[1:]]
    has_nearest = [True] * len(real) if nearest is None else [p is not None for p in nearest_pitches]
    shown = specs[:2] + ([specs[2][np.asarray(has_nearest)]] if nearest is not None and any(has_nearest) else [])
    vmax = max(float(spec.max()) for spec in shown)
    vmin = vmax - DYNAMIC_RANGE_DB
    seconds = real.shape[1] / sample_rate
    extent = (0.0, seconds, 0.0, sample_rate / 2000)
    plt = _pyplot()
    fig = plt.figure(figsize=(2.1 * per_note * ncols + 0.3 * (ncols - 1), 2.0 * len(rows) + 0.2))
    # A group per note (its panels close together), groups apart.
    outer = fig.add_gridspec(len(rows), ncols, wspace=0.12 if per_note > 2 else 0.2, hspace=0.45)
    axes = np.empty((len(rows), per_note * ncols), dtype=object)
    first = None
    for r in range(len(rows)):
        for c in range(ncols):
            inner = outer[r, c].subgridspec(1, per_note, wspace=0.06)
            for k in range(per_note):
                ax = fig.add_subplot(inner[0, k], sharex=first, sharey=first)
                first = first or ax
                axes[r, per_note * c + k] = ax
    # Whole seconds but the last: a panel's last label would touch its neighbour's first.
    first.set_xticks(np.arange(0, int(np.ceil(seconds))))
    image = None
    for r, fam in enumerate(rows):
        for c in range(ncols):
            for k in range(per_note):
                ax = axes[r, per_note * c + k]
                if c >= len(cells[fam]):
                    ax.axis("off")
                    continue
                i = cells[fam][c]
                ax.tick_params(labelsize=6, labelleft=(c == 0 and k == 0), labelbottom=(r == len(rows) - 1))
                if k == 2 and not has_nearest[i]:
                    # Not set_xticks([]): the axes are shared, that would clear every panel's ticks.
                    ax.tick_params(left=False, bottom=False, labelleft=False, labelbottom=False)
                    ax.set_title("nearest key\nnone", fontsize=7)
                    ax.text(0.5, 0.5, "no other training pitch\nof this instrument\nat this velocity",
                            transform=ax.transAxes, fontsize=6, ha="center", va="center", color="0.4")
                    continue
                image = ax.imshow(specs[k][i], origin="lower", aspect="auto", extent=extent, vmin=vmin, vmax=vmax,
                                  cmap="magma", interpolation="nearest")
                if k == 0:
                    title = "real" + (f" · pitch {int(pitches[i])}" if pitches is not None else "")
                    title += "\nthe reference"
                    # A note name on two lines (instrument, then pitch-velocity): one line overruns the panel.
                    ax.text(0.02, 0.97, str(labels[i]).replace("-", "\n", 1), transform=ax.transAxes, fontsize=5.5,
                            color="white", va="top")
                elif k == 1:
                    title = f"generated\nlts {lts[k][i]:.1f} dB"
                else:
                    title = f"nearest key · from {int(nearest_pitches[i])}\nlts {lts[k][i]:.1f} dB"
                ax.set_title(title, fontsize=7)
                if c == 0 and k == 0:
                    ax.set_ylabel(f"{fam}\nkHz", fontsize=8)
                if r == len(rows) - 1:
                    ax.set_xlabel("s", fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=[a for a in axes.ravel() if a is not None], shrink=0.6, label="power (dB)")
    what = "Real | generated" + (" | nearest key (sampler)" if nearest is not None else "")
    # A quarter of an inch above the top panels, whatever the number of rows: at its default
    # height a one-row sheet's title sits on its panels' titles.
    fig.suptitle(f"{what} notes across families (rows) and pitches; lts: long-term spectrum distance to the "
                 f"real note, dB", fontsize=10,
                 y=axes[0, 0].get_position().y1 + 0.3 / fig.get_figheight(), va="bottom")
    return fig


def plot_spectrogram_grid(real: np.ndarray, generated: np.ndarray, labels: Sequence[str], path: str | Path,
                          families: Sequence[str] | None = None, pitches: Sequence[int] | None = None,
                          nearest: np.ndarray | None = None, nearest_pitches: Sequence[int | None] | None = None,
                          n_fft: int = 1024, hop_length: int = 256, sample_rate: int = SAMPLE_RATE) -> Path:
    """Real beside generated (and nearest-key) spectrograms: one row per family, a group per pitch.

    The images are power in dB (``10 log10 |STFT|^2``) over the figure's top 80 dB, on one
    colour scale for the whole figure so rows can be compared. (The spectral loss's
    ``log(1 + |STFT|^2)`` hides everything below about 0 dB, so quiet partials and release
    tails, where models differ most, would not show.) The arguments are
    :func:`spectrogram_grid_figure`'s.

    Returns:
        the path.
    """
    return _save(spectrogram_grid_figure(real, generated, labels, families, pitches, nearest, nearest_pitches,
                                         n_fft, hop_length, sample_rate), path)


def load_training_histories(run_id: str, tracking_uri: str | None = None) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Metric histories of a training run's phases from MLflow.

    The phases are the nested runs of ``run_id`` (:func:`sing_ray.tracking.phase_runs`: by their
    phase tag or their name); a run without nested phase runs counts as one phase of its own name.

    Returns:
        ``{phase: {metric key: [(step, value), ...]}}`` in the order autoencoder, sequence, finetune.
    """
    import mlflow

    from .tracking import configure_mlflow, phase_of, phase_runs

    configure_mlflow(tracking_uri)
    client = mlflow.MlflowClient()
    try:
        parent = client.get_run(run_id)
    except Exception as err:  # MLflow raises store-specific exception types
        raise UserError(f"MLflow run {run_id}: cannot be read ({err})") from None
    runs = phase_runs(client, parent) or {(phase_of(parent) or parent.info.run_name or run_id): parent}
    order = [p for p in PHASES if p in runs] + [p for p in runs if p not in PHASES]
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for phase in order:
        run = runs[phase]
        out[phase] = {}
        for key in sorted(run.data.metrics):
            history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: (m.step, m.timestamp))
            out[phase][key] = [(int(m.step), float(m.value)) for m in history]
    return out


def plot_training_curves(run_id: str | Mapping, path: str | Path, tracking_uri: str | None = None) -> Path:
    """Training curves of the three phases, one panel per phase, from MLflow metric histories.

    Args:
        run_id: the training pipeline's parent run, or histories as returned by
            :func:`load_training_histories`.
        path: the PNG to write.
    Returns:
        the path. Raises UserError when the run holds no metric with more than one point.
    """
    histories = load_training_histories(run_id, tracking_uri) if isinstance(run_id, str) else dict(run_id)
    curves = {p: {k: v for k, v in h.items() if len(v) > 1} for p, h in histories.items()}
    curves = {p: h for p, h in curves.items() if h}
    if not curves:
        raise UserError(f"training run {run_id if isinstance(run_id, str) else ''} has no metric history "
                        "of more than one step to draw")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(4.3 * len(curves), 3.4), squeeze=False)
    for ax, (phase, metrics) in zip(axes[0], curves.items()):
        positive = True
        for key, points in metrics.items():
            steps, values = zip(*points)
            ax.plot(steps, values, marker="o", markersize=2.5, linewidth=1.2, label=key)
            positive &= min(values) > 0
        if positive:
            ax.set_yscale("log")
        ax.set_title(phase)
        ax.set_xlabel("step (epoch)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, frameon=False)
    fig.suptitle("Training curves per phase (MLflow metric histories)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
