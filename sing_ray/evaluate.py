"""Evaluation that stands in for listening tests: per-note metrics, grouped summaries, reports.

Metrics, per note, of a model's output against the real note (see docs/evaluation.md):

- ``wav_mse`` and ``spectral_l1``: the paper's Table 1 columns (:func:`sing_ray.losses.table1_metrics`).
- ``mrstft``: a multi-resolution STFT distance (spectral convergence plus log-magnitude L1,
  averaged over three STFT sizes), less tied to one analysis window than ``spectral_l1``.
- pitch: the f0 of the note, tracked offline with ``librosa.pyin``, against its MIDI pitch in
  cents; a note is in tune when within :data:`PITCH_TOLERANCE_CENTS`.
- ``fd_logmel``: the Fréchet distance between Gaussians fitted to real and to generated notes
  over a fixed, weight-free embedding (:data:`EMBEDDING_NAME`). It is *not* FAD-VGGish and its
  values are not comparable with published FAD numbers; it needs nothing downloaded.
- loudness: the RMS level in dBFS of the generated (``rms_db``) and of the real note
  (``rms_db_real``) and their difference (``rms_db_diff``); a generated note below
  :data:`NEAR_SILENT_DB` is near-silent.
- ``spectral_l1_silence``: Table 1's spectral L1 of an all-zero output against the real note,
  the bar a model must clear: one that scores like silence has learnt nothing.

Summaries are given overall, per instrument family and per pitch octave. The Ray part
(:func:`evaluate_model`) generates and scores notes with Ray Data ``map_batches`` on an actor
pool that holds the model, so audio never travels to the driver; only per-note metrics and
embeddings come back.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from .dsp import stft_magnitude
from .errors import UserError
from .losses import table1_metrics
from .nsynth import SAMPLE_RATE

log = logging.getLogger(__name__)

PITCH_TOLERANCE_CENTS = 50.0
# (n_fft, hop) pairs of the multi-resolution STFT distance: 32 ms to 128 ms windows at 16 kHz,
# so that both the attack (short windows) and the partials' frequencies (long windows) count.
MRSTFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))
MRSTFT_EPS = 1e-5                 # magnitude floor before the log: about -100 dB below full scale

# The embedding of the Fréchet distance: time mean and standard deviation of a 32-band
# log-mel spectrogram (n_fft 1024, hop 256, 0-8 kHz, Slaney mel scale), 64 numbers per note.
EMBEDDING_NAME = "logmel32-meanstd"
EMBEDDING_N_MELS = 32
EMBEDDING_N_FFT = 1024
EMBEDDING_HOP = 256
EMBEDDING_EPS = 1e-6
EMBEDDING_DIM = 2 * EMBEDDING_N_MELS

# pyin searches one octave and a semitone either side of the expected pitch: octave errors
# stay visible (they land inside the window) while the search costs 0.1-0.4 s per note
# instead of several seconds for the whole piano range.
PITCH_SEARCH_SEMITONES = 13
# The lowest frequency searched: two of its periods must fit in pyin's frame.
PITCH_MIN_MIDI = 12               # 16.35 Hz
# Notes are upsampled 3x before tracking: at 16 kHz a 2.6 kHz partial has a period of six
# samples and YIN's interpolation is off by 20 cents; at 48 kHz it is exact to the bin.
PITCH_TRACK_RATE = 48000
PITCH_FRAME_SECONDS = 0.128
PITCH_HOP_SECONDS = 0.016
PITCH_RESOLUTION = 0.05           # semitones per pyin bin: f0 quantised to 5 cents
PITCH_MIN_VOICED_FRAMES = 3       # fewer voiced frames than this: no f0 (a miss)

SUMMARY_METRICS = ("wav_mse", "spectral_l1", "mrstft")

# A generated note whose RMS level lies below this is near-silent: 25 dB or more under the
# median real note (the quick start's train notes: median -34.6 dBFS RMS), next to nothing
# at a normal listening level. A level, not a peak: nsynth.SILENT_PEAK (-80 dBFS peak) marks
# a rendered note as silent outright, which a note holding one faint click would escape.
NEAR_SILENT_DB = -60.0
# The level given to digital silence, so that an all-zero note has a finite RMS level (JSON and
# MLflow hold no -inf): below anything 16-bit audio can hold (-98 dBFS).
RMS_DB_FLOOR = -120.0
# A spectral L1 within this share of silence's is no better than silence (as table1.SILENCE_RTOL).
SILENCE_RTOL = 1e-3


# --------------------------------------------------------------------------- per-note metrics

@torch.no_grad()
def multi_resolution_stft_distance(output: torch.Tensor, target: torch.Tensor,
                                   resolutions: Sequence[tuple[int, int]] = MRSTFT_RESOLUTIONS,
                                   eps: float = MRSTFT_EPS) -> dict[str, torch.Tensor]:
    """Multi-resolution STFT distance, per note.

    For each (n_fft, hop): spectral convergence ``||S - S_hat||_F / ||S||_F`` and the mean
    absolute difference of log magnitudes (floored at ``eps``); each averaged over the
    resolutions, and ``mrstft`` their sum. A note against itself gives 0; silence against a
    note gives a spectral convergence of exactly 1.

    Args:
        output, target: (B, T) waveforms.
        resolutions: (n_fft, hop) pairs; Hann windows of n_fft samples.
        eps: magnitude floor before the log.
    Returns:
        ``{"mrstft": (B,), "mrstft_sc": (B,), "mrstft_logmag": (B,)}``.
    """
    sc = torch.zeros(output.shape[0], dtype=torch.float64)
    logmag = torch.zeros_like(sc)
    for n_fft, hop in resolutions:
        a = stft_magnitude(output.float(), n_fft, hop).double()
        b = stft_magnitude(target.float(), n_fft, hop).double()
        num = (a - b).square().sum(dim=(-1, -2)).sqrt()
        den = b.square().sum(dim=(-1, -2)).sqrt()
        # Silent target and silent output: a perfect match, not 0 / 0.
        sc += torch.where(den > 0, num / den.clamp_min(1e-30), (num > 0).double())
        logmag += (a.clamp_min(eps).log() - b.clamp_min(eps).log()).abs().mean(dim=(-1, -2))
    sc, logmag = sc / len(resolutions), logmag / len(resolutions)
    return {"mrstft": (sc + logmag).float(), "mrstft_sc": sc.float(), "mrstft_logmag": logmag.float()}


def midi_to_hz(pitch: float | np.ndarray) -> float | np.ndarray:
    """Equal temperament, A4 (MIDI 69) = 440 Hz."""
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)


def cents_off(f0: float | np.ndarray, pitch: float | np.ndarray) -> float | np.ndarray:
    """Signed distance in cents of ``f0`` (Hz) from MIDI ``pitch``; NaN where f0 is NaN or <= 0."""
    f0 = np.asarray(f0, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 1200.0 * np.log2(np.where(f0 > 0, f0, np.nan) / midi_to_hz(pitch))
    return out if out.ndim else float(out)


def estimate_f0(wav: np.ndarray, pitch: int, sample_rate: int = SAMPLE_RATE) -> float:
    """The f0 of one note in Hz, tracked with pYIN around its expected MIDI pitch.

    The note is upsampled to :data:`PITCH_TRACK_RATE`, pYIN searches
    ``pitch ± PITCH_SEARCH_SEMITONES``, and the f0 is the median over voiced frames.

    Args:
        wav: (T,) float waveform.
        pitch: the MIDI pitch the note should have (centres the search window).
        sample_rate: of ``wav``.
    Returns:
        f0 in Hz, or NaN when fewer than :data:`PITCH_MIN_VOICED_FRAMES` frames are voiced
        (silence, noise): such a note counts as out of tune.
    """
    import librosa

    wav = np.asarray(wav, dtype=np.float32)
    if not np.any(wav):
        return float("nan")
    rate = PITCH_TRACK_RATE
    y = librosa.resample(wav, orig_sr=sample_rate, target_sr=rate) if sample_rate != rate else wav
    lo = max(int(pitch) - PITCH_SEARCH_SEMITONES, PITCH_MIN_MIDI)
    # pyin needs fmax below Nyquist; the window is cut on the MIDI grid so bins stay aligned.
    hi = min(int(pitch) + PITCH_SEARCH_SEMITONES, int(math.floor(12 * math.log2(0.45 * rate / 440) + 69)))
    if hi <= lo:
        return float("nan")
    f0, voiced, _ = librosa.pyin(
        y, fmin=float(midi_to_hz(lo)), fmax=float(midi_to_hz(hi)), sr=rate,
        frame_length=int(PITCH_FRAME_SECONDS * rate), hop_length=int(PITCH_HOP_SECONDS * rate),
        resolution=PITCH_RESOLUTION)
    good = voiced & np.isfinite(f0)
    if good.sum() < PITCH_MIN_VOICED_FRAMES:
        return float("nan")
    return float(np.median(f0[good]))


_MEL_CACHE: dict[tuple, torch.Tensor] = {}


def _mel_filters(sample_rate: int) -> torch.Tensor:
    key = (sample_rate, EMBEDDING_N_FFT, EMBEDDING_N_MELS)
    if key not in _MEL_CACHE:
        import librosa

        fb = librosa.filters.mel(sr=sample_rate, n_fft=EMBEDDING_N_FFT, n_mels=EMBEDDING_N_MELS,
                                 fmin=0.0, fmax=sample_rate / 2, htk=False, norm="slaney")
        _MEL_CACHE[key] = torch.from_numpy(fb.astype(np.float32))
    return _MEL_CACHE[key]


@torch.no_grad()
def note_embedding(wav: torch.Tensor | np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The fixed embedding of the Fréchet distance (:data:`EMBEDDING_NAME`).

    Per note: the log-mel spectrogram ``log(mel(|STFT|^2) + 1e-6)`` with 32 Slaney mel bands
    (n_fft 1024, hop 256, Hann), then its mean and standard deviation over time. No learnt
    weights: the same numbers on every machine, nothing downloaded.

    Args:
        wav: (B, T) waveforms.
    Returns:
        (B, 64) float64: 32 band means, then 32 band standard deviations.
    """
    wav = torch.as_tensor(np.asarray(wav, dtype=np.float32)) if not torch.is_tensor(wav) else wav.float()
    power = stft_magnitude(wav, EMBEDDING_N_FFT, EMBEDDING_HOP).square()
    mel = torch.einsum("mf,bft->bmt", _mel_filters(sample_rate), power)
    logmel = (mel + EMBEDDING_EPS).log().double()
    return torch.cat([logmel.mean(-1), logmel.std(-1, correction=0)], dim=-1).numpy()


def gaussian_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of embeddings ``x`` (N, D), N >= 2 (unbiased covariance)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need at least 2 embeddings of shape (N, D), got {x.shape}")
    return x.mean(0), np.cov(x, rowvar=False)


def frechet_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``. The trace of the
    square root is taken as that of the symmetric ``(s1 sigma2 s1)^(1/2)`` with ``s1 = sigma1^(1/2)``
    (same eigenvalues), from symmetric eigendecompositions: stable when the covariances are
    singular, as they are whenever a group has fewer notes than embedding dimensions.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    diff = mu1 - mu2
    w1, v1 = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    s1 = (v1 * np.sqrt(np.clip(w1, 0.0, None))) @ v1.T
    inner = s1 @ sigma2 @ s1
    trace_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum())
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)
    # Round-off can push a distance of 0 a hair below it.
    return max(value, 0.0)


def frechet_distance(real: np.ndarray, generated: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of embeddings (N, D) and (M, D)."""
    return frechet_from_stats(*gaussian_stats(real), *gaussian_stats(generated))


def rms_dbfs(wav: np.ndarray | torch.Tensor) -> np.ndarray:
    """RMS level of each note in dBFS (a full-scale square wave is 0 dBFS).

    Args:
        wav: (B, T) or (T,) waveforms in [-1, 1].
    Returns:
        (B,) float64 (a float for one note), floored at :data:`RMS_DB_FLOOR` (digital silence).
    """
    x = wav.detach().cpu().double().numpy() if torch.is_tensor(wav) else np.asarray(wav, dtype=np.float64)
    rms = np.sqrt(np.mean(np.square(x), axis=-1))
    floor = 10.0 ** (RMS_DB_FLOOR / 20.0)
    db = 20.0 * np.log10(np.maximum(rms, floor))
    return db if np.ndim(db) else float(db)


def note_metrics(output: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor,
                 pitches: Sequence[int] | None = None, *, with_pitch: bool = True,
                 with_reference_pitch: bool = True, with_embedding: bool = True,
                 sample_rate: int = SAMPLE_RATE) -> dict[str, np.ndarray]:
    """Every per-note metric of ``output`` (generated) against ``target`` (real).

    Args:
        output, target: (B, T) waveforms in [-1, 1].
        pitches: (B,) MIDI pitches (needed for the pitch metrics).
        with_pitch: track the f0 of the generated notes.
        with_reference_pitch: also track the real notes (how well the tracker does on the data).
        with_embedding: compute both notes' embeddings for the Fréchet distance.
    Returns:
        ``wav_mse``, ``spectral_l1``, ``mrstft``, ``mrstft_sc``, ``mrstft_logmag``: (B,);
        ``spectral_l1_silence`` (B,): the spectral L1 an all-zero output would score;
        ``rms_db``, ``rms_db_real`` (B,): RMS levels in dBFS, and ``rms_db_diff`` (generated
        minus real, dB); with pitch: ``f0`` and ``cents`` (B,), NaN where untracked; with the reference, also
        ``f0_real`` and ``cents_real``; with embeddings: ``emb_real`` and ``emb_generated`` (B, 64).
    """
    out_t = torch.as_tensor(np.asarray(output, dtype=np.float32)) if not torch.is_tensor(output) else output.float()
    ref_t = torch.as_tensor(np.asarray(target, dtype=np.float32)) if not torch.is_tensor(target) else target.float()
    if out_t.shape != ref_t.shape or out_t.dim() != 2:
        raise ValueError(f"output {tuple(out_t.shape)} and target {tuple(ref_t.shape)} must both be (B, T)")
    out_t, ref_t = out_t.cpu(), ref_t.cpu()
    result = {k: v.numpy().astype(np.float64) for k, v in table1_metrics(out_t, ref_t).items()}
    result.update({k: v.numpy().astype(np.float64) for k, v in multi_resolution_stft_distance(out_t, ref_t).items()})
    # log(1 + 0) = 0, so silence's spectral L1 is the mean of l(x); computed as Table 1 does,
    # on an all-zero output, so that a silent model's score equals it exactly.
    result["spectral_l1_silence"] = table1_metrics(torch.zeros_like(ref_t), ref_t)["spectral_l1"].numpy().astype(np.float64)
    result["rms_db"] = rms_dbfs(out_t)
    result["rms_db_real"] = rms_dbfs(ref_t)
    result["rms_db_diff"] = result["rms_db"] - result["rms_db_real"]
    if with_pitch or with_reference_pitch:
        if pitches is None or len(pitches) != out_t.shape[0]:
            raise ValueError("pitch metrics need one MIDI pitch per note")
        pitches = [int(p) for p in pitches]
        if with_pitch:
            result["f0"] = np.array([estimate_f0(w, p, sample_rate) for w, p in zip(out_t.numpy(), pitches)])
            result["cents"] = np.asarray(cents_off(result["f0"], pitches), dtype=np.float64)
        if with_reference_pitch:
            result["f0_real"] = np.array([estimate_f0(w, p, sample_rate) for w, p in zip(ref_t.numpy(), pitches)])
            result["cents_real"] = np.asarray(cents_off(result["f0_real"], pitches), dtype=np.float64)
    if with_embedding:
        result["emb_real"] = note_embedding(ref_t, sample_rate)
        result["emb_generated"] = note_embedding(out_t, sample_rate)
    return result


def in_tune(cents: np.ndarray, tolerance: float = PITCH_TOLERANCE_CENTS) -> np.ndarray:
    """Boolean (B,): ``|cents| <= tolerance``; an untracked note (NaN) is out of tune."""
    cents = np.asarray(cents, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.abs(np.nan_to_num(cents, nan=np.inf)) <= tolerance


def audible_in_tune(notes: Mapping[str, Any]) -> float:
    """The share of notes in tune (:func:`in_tune`) and not near-silent (RMS >= :data:`NEAR_SILENT_DB`).

    The pitch tracker follows a pitch however quiet the note: a model whose notes are all
    at -90 dBFS can score 100 % in tune. This share counts only what a listener would hear.
    """
    ok = in_tune(notes["cents"]) & (np.asarray(notes["rms_db"], dtype=np.float64) >= NEAR_SILENT_DB)
    return float(ok.mean()) if len(ok) else 0.0


def octave_of(pitch: int | np.ndarray) -> int | np.ndarray:
    """Scientific pitch octave of a MIDI pitch: 60 (C4) -> 4, 59 (B3) -> 3."""
    return np.asarray(pitch) // 12 - 1 if np.ndim(pitch) else int(pitch) // 12 - 1


# --------------------------------------------------------------------------- summaries

def summarize_group(notes: Mapping[str, np.ndarray], mask: np.ndarray | None = None,
                    min_fd_notes: int = 2) -> dict[str, Any]:
    """Aggregate per-note metrics over the notes selected by ``mask`` (all when None).

    Args:
        notes: columns from :func:`note_metrics` (and any metadata), each (N,) or (N, D).
        mask: (N,) bool.
        min_fd_notes: the Fréchet distance needs this many notes (it is biased upward with few).
    Returns:
        ``num_notes``; the mean of each of :data:`SUMMARY_METRICS`; with ``spectral_l1_silence``
        its mean and ``spectral_l1_vs_silence`` (mean spectral L1 / silence's: 1 or more is no
        better than an all-zero output); with levels ``median_rms_db``, ``median_rms_db_real``,
        ``median_rms_db_diff`` (generated − real), ``median_abs_rms_db_diff``,
        ``num_near_silent`` and ``near_silent_share`` (generated notes below
        :data:`NEAR_SILENT_DB`) and ``num_near_silent_real``; with pitch columns
        ``pitch_accuracy`` (share within 50 cents, untracked notes counting as misses),
        ``median_abs_cents`` (over tracked notes), ``untracked_share``, and for the real notes
        ``pitch_accuracy_real``; with embeddings ``fd_logmel`` (None below ``min_fd_notes``).
    """
    n_all = len(next(iter(notes.values())))
    mask = np.ones(n_all, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    n = int(mask.sum())
    out: dict[str, Any] = {"num_notes": n}
    if n == 0:
        return out
    for key in SUMMARY_METRICS:
        if key in notes:
            out[key] = float(np.mean(np.asarray(notes[key])[mask]))
    if "spectral_l1_silence" in notes:
        silence = float(np.mean(np.asarray(notes["spectral_l1_silence"])[mask]))
        out["spectral_l1_silence"] = silence
        if "spectral_l1" in out:
            # A ratio of means, not a mean of ratios: quiet notes, whose silence L1 is
            # small, would otherwise dominate.
            out["spectral_l1_vs_silence"] = out["spectral_l1"] / silence if silence > 0 else None
    if "rms_db" in notes:
        level = np.asarray(notes["rms_db"], dtype=np.float64)[mask]
        out["median_rms_db"] = float(np.median(level))
        out["num_near_silent"] = int((level < NEAR_SILENT_DB).sum())
        out["near_silent_share"] = out["num_near_silent"] / n
    if "rms_db_real" in notes:
        level_real = np.asarray(notes["rms_db_real"], dtype=np.float64)[mask]
        out["median_rms_db_real"] = float(np.median(level_real))
        out["num_near_silent_real"] = int((level_real < NEAR_SILENT_DB).sum())
        if "rms_db" in notes:
            diff = level - level_real
            out["median_rms_db_diff"] = float(np.median(diff))
            out["median_abs_rms_db_diff"] = float(np.median(np.abs(diff)))
    if "cents" in notes:
        cents = np.asarray(notes["cents"], dtype=np.float64)[mask]
        tracked = np.isfinite(cents)
        out["pitch_accuracy"] = float(in_tune(cents).mean())
        out["median_abs_cents"] = float(np.median(np.abs(cents[tracked]))) if tracked.any() else None
        out["untracked_share"] = float(1.0 - tracked.mean())
    if "cents_real" in notes:
        out["pitch_accuracy_real"] = float(in_tune(np.asarray(notes["cents_real"])[mask]).mean())
    if "emb_real" in notes and "emb_generated" in notes:
        out["fd_logmel"] = (frechet_distance(np.asarray(notes["emb_real"])[mask],
                                             np.asarray(notes["emb_generated"])[mask])
                            if n >= min_fd_notes else None)
    return out


def summarize(notes: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Overall, per instrument family and per pitch octave summaries of per-note results.

    Args:
        notes: per-note columns: the metrics plus ``pitch`` and ``instrument_family_str``.
    Returns:
        ``{"overall": {...}, "by_family": {family: {...}}, "by_octave": {"4": {...}}}`` with
        the fields of :func:`summarize_group`.
    """
    out: dict[str, Any] = {"overall": summarize_group(notes)}
    families = np.asarray(notes["instrument_family_str"]).astype(str)
    out["by_family"] = {fam: summarize_group(notes, families == fam) for fam in sorted(set(families))}
    octaves = octave_of(np.asarray(notes["pitch"], dtype=np.int64))
    out["by_octave"] = {str(o): summarize_group(notes, octaves == o) for o in sorted(set(octaves.tolist()))}
    return out


# --------------------------------------------------------------------------- reports

EMBEDDING_DESCRIPTION = (
    f"{EMBEDDING_NAME}: per note, the time mean and standard deviation of a {EMBEDDING_N_MELS}-band "
    f"log-mel spectrogram (n_fft {EMBEDDING_N_FFT}, hop {EMBEDDING_HOP}, Hann, Slaney mel 0-8 kHz, "
    f"log(mel power + {EMBEDDING_EPS:g})), {EMBEDDING_DIM} dimensions. A fixed signal-processing "
    "embedding with no learnt weights: NOT FAD-VGGish, not comparable with published FAD values.")
PITCH_DESCRIPTION = (
    f"librosa.pyin on the note upsampled to {PITCH_TRACK_RATE} Hz, searching ±{PITCH_SEARCH_SEMITONES} "
    f"semitones around the MIDI pitch (bins of {PITCH_RESOLUTION * 100:g} cents), f0 = median over voiced "
    f"frames; in tune = within {PITCH_TOLERANCE_CENTS:g} cents; a note with fewer than "
    f"{PITCH_MIN_VOICED_FRAMES} voiced frames counts as out of tune.")
MRSTFT_DESCRIPTION = (
    "mean over STFT sizes (n_fft, hop) " + ", ".join(f"({a}, {b})" for a, b in MRSTFT_RESOLUTIONS)
    + f" of spectral convergence + mean |log max(|S|, {MRSTFT_EPS:g}) - log max(|S_hat|, {MRSTFT_EPS:g})|.")

LOUDNESS_DESCRIPTION = (
    "RMS level of the whole 4 s note in dBFS (20 log10 RMS; a full-scale square wave is 0 dBFS; "
    f"digital silence is given {RMS_DB_FLOOR:g}); gen − real is the generated note's level minus "
    f"the real note's, per note, then the median; a generated note below {NEAR_SILENT_DB:g} dBFS "
    "is near-silent.")
SILENCE_DESCRIPTION = (
    "silence's L1 is Table 1's spectral L1 of an all-zero output against the same real notes; "
    "L1 / silence's is the model's mean spectral L1 over silence's: 1 or more means the model "
    "scores no better than outputting nothing.")

_COLUMNS = (("num_notes", "notes", "{:d}"), ("wav_mse", "wav MSE", "{:.5f}"),
            ("spectral_l1", "spectral L1", "{:.4f}"), ("mrstft", "MR-STFT", "{:.4f}"),
            ("pitch_accuracy", "pitch acc.", "{:.1%}"), ("median_abs_cents", "median \\|cents\\|", "{:.1f}"),
            ("pitch_accuracy_real", "pitch acc. (real)", "{:.1%}"), ("fd_logmel", "FD logmel", "{:.3f}"))
# Loudness and the silence baseline, per group: what a listener notices first.
LEVEL_COLUMNS = (("num_notes", "notes", "{:d}"), ("median_rms_db", "RMS dBFS", "{:.1f}"),
                 ("median_rms_db_real", "real RMS dBFS", "{:.1f}"),
                 ("median_rms_db_diff", "gen − real dB", "{:+.1f}"),
                 ("median_abs_rms_db_diff", "\\|gen − real\\| dB", "{:.1f}"),
                 ("num_near_silent", "near-silent", "{:d}"), ("near_silent_share", "near-silent share", "{:.0%}"),
                 ("spectral_l1", "spectral L1", "{:.4f}"), ("spectral_l1_silence", "silence's L1", "{:.4f}"),
                 ("spectral_l1_vs_silence", "L1 / silence's", "{:.2f}"))
_LEVEL_KEYS = ("median_rms_db", "median_rms_db_real")


def _cell(value: Any, fmt: str, key: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if key in _LEVEL_KEYS and value <= RMS_DB_FLOOR:
        return "silent"
    return fmt.format(value)


def markdown_table(rows: Mapping[str, Mapping[str, Any]], first: str,
                   columns: Sequence[tuple[str, str, str]] = _COLUMNS) -> str:
    """A Markdown table of summaries, one row per key of ``rows``; absent columns are left out.

    Args:
        rows: ``{row name: summary}`` (:func:`summarize_group`'s fields).
        first: the first column's heading.
        columns: ``(key, heading, format)`` triples; the default is the Table 1, MR-STFT, pitch
            and FD columns, :data:`LEVEL_COLUMNS` the loudness and silence ones.
    """
    present = [c for c in columns if any(c[0] in r for r in rows.values())]
    lines = ["| " + " | ".join([first] + [c[1] for c in present]) + " |",
             "| " + " | ".join(["---"] + ["---:"] * len(present)) + " |"]
    for name, row in rows.items():
        lines.append("| " + " | ".join([str(name)] + [_cell(row.get(k), f, k) for k, _, f in present]) + " |")
    return "\n".join(lines)


def _share(count: int | None, total: int) -> str:
    return "–" if count is None else f"{count} of {total} ({count / total:.0%})" if total else "–"


# The rows of :func:`listener_table`, by name; the quick start prints the short set.
LISTENER_ROWS = ("in_tune", "level", "level_diff", "abs_level_diff", "near_silent", "spectral_l1",
                 "spectral_l1_vs_silence")
SHORT_LISTENER_ROWS = ("in_tune", "level_diff", "near_silent", "spectral_l1", "spectral_l1_vs_silence")


def listener_table(overall: Mapping[str, Any], rows: Sequence[str] = LISTENER_ROWS) -> str:
    """The model's scores beside the real notes' and an all-zero output's, as a Markdown table.

    Args:
        overall: one group's summary (:func:`summarize_group`).
        rows: which of :data:`LISTENER_ROWS`; a row whose numbers are absent is left out.
    Returns:
        a table with columns *model*, *real notes*, *silence (all-zero output)*.
    """
    n = int(overall.get("num_notes") or 0)
    g = overall.get

    def level(key: str) -> str:
        return _cell(g(key), "{:.1f}", key)

    table = {
        "in_tune": (f"in tune (f0 within {PITCH_TOLERANCE_CENTS:g} cents)", "pitch_accuracy",
                    _cell(g("pitch_accuracy"), "{:.1%}"), _cell(g("pitch_accuracy_real"), "{:.1%}"), "0.0%"),
        "level": ("median loudness (RMS dBFS)", "median_rms_db", level("median_rms_db"),
                  level("median_rms_db_real"), "silent"),
        "level_diff": ("median loudness difference, generated − real (dB)", "median_rms_db_diff",
                       _cell(g("median_rms_db_diff"), "{:+.1f}"), "0.0", "−∞"),
        "abs_level_diff": ("median \\|generated − real\\| (dB)", "median_abs_rms_db_diff",
                           _cell(g("median_abs_rms_db_diff"), "{:.1f}"), "0.0", "∞"),
        "near_silent": (f"near-silent notes (RMS below {NEAR_SILENT_DB:g} dBFS)", "num_near_silent",
                        _share(g("num_near_silent"), n), _share(g("num_near_silent_real"), n), _share(n, n)),
        "spectral_l1": ("spectral L1 (Table 1)", "spectral_l1", _cell(g("spectral_l1"), "{:.4f}"), "0.0000",
                        _cell(g("spectral_l1_silence"), "{:.4f}")),
        "spectral_l1_vs_silence": ("spectral L1 / silence's", "spectral_l1_vs_silence",
                                   _cell(g("spectral_l1_vs_silence"), "{:.2f}"), "0.00", "1.00"),
    }
    lines = [f"| {n} notes | model | real notes | silence (all-zero output) |", "| --- | ---: | ---: | ---: |"]
    for name in rows:
        label, key, *cells = table[name]
        if key in overall:
            lines.append("| " + " | ".join([label, *cells]) + " |")
    return "\n".join(lines)


def scores_like_silence(overall: Mapping[str, Any]) -> bool:
    """True when the mean spectral L1 is no better than an all-zero output's (within :data:`SILENCE_RTOL`)."""
    ratio = overall.get("spectral_l1_vs_silence")
    return ratio is not None and ratio >= 1.0 - SILENCE_RTOL


def listener_verdict(overall: Mapping[str, Any]) -> list[str]:
    """Plain sentences on what a listener would notice, from one group's summary.

    Says outright when the model scores no better than silence and when its notes are
    near-silent; then the loudness gap and pitch accuracy against the real notes.
    """
    g = overall.get
    n = int(g("num_notes") or 0)
    out: list[str] = []
    if g("spectral_l1_vs_silence") is not None:
        if scores_like_silence(overall):
            out.append(f"**No better than silence**: the mean spectral L1 ({g('spectral_l1'):.4f}) is "
                       f"{g('spectral_l1_vs_silence'):.2f} times that of an all-zero output on the same notes "
                       f"({g('spectral_l1_silence'):.4f}); by Table 1's measure this model has learnt nothing.")
        else:
            out.append(f"Better than silence: the mean spectral L1 ({g('spectral_l1'):.4f}) is "
                       f"{g('spectral_l1_vs_silence'):.2f} times an all-zero output's ({g('spectral_l1_silence'):.4f}).")
    if g("num_near_silent") is not None and n:
        k = g("num_near_silent")
        if k == n:
            out.append(f"**The model outputs near-silence**: all {n} generated notes are below "
                       f"{NEAR_SILENT_DB:g} dBFS RMS.")
        else:
            real = g("num_near_silent_real")
            of_real = "" if real is None else f"; the real notes: {real:g} of {n}"
            if k:
                out.append(f"{k:g} of {n} generated notes ({k / n:.0%}) {'is' if k == 1 else 'are'} near-silent "
                           f"(below {NEAR_SILENT_DB:g} dBFS RMS{of_real}).")
            else:
                out.append(f"No generated note is near-silent (below {NEAR_SILENT_DB:g} dBFS RMS{of_real}).")
    diff = g("median_rms_db_diff")
    if diff is not None and g("median_rms_db_real") is not None:
        side = "quieter" if diff < 0 else "louder"
        out.append(f"Generated notes are a median {abs(diff):.1f} dB {side} than the real notes "
                   f"(median level {_cell(g('median_rms_db'), '{:.1f}', 'median_rms_db')} against "
                   f"{g('median_rms_db_real'):.1f} dBFS; median |difference| {g('median_abs_rms_db_diff'):.1f} dB).")
    if g("pitch_accuracy") is not None:
        real = g("pitch_accuracy_real")
        out.append(f"{g('pitch_accuracy'):.0%} of generated notes are in tune (f0 within "
                   f"{PITCH_TOLERANCE_CENTS:g} cents)" + (f", against {real:.0%} of the real notes with the same "
                                                          "tracker." if real is not None else "."))
    return out


def listener_summary(overall: Mapping[str, Any], rows: Sequence[str] = LISTENER_ROWS) -> str:
    """:func:`listener_verdict` as a bullet list, then :func:`listener_table`."""
    verdict = listener_verdict(overall)
    return "\n".join([f"- {line}" for line in verdict] + ([""] if verdict else []) + [listener_table(overall, rows)])


def format_markdown(report: Mapping[str, Any]) -> str:
    """The Markdown form of an evaluation report (see :func:`evaluate_model`)."""
    summary = report["summary"]
    parts = [f"# Evaluation of {report['model']}", "",
             f"- dataset: `{report['dataset']}`, split `{report['split']}`, {report['num_notes']} notes"
             + (f" (of {report['split_size']})" if report.get("split_size") else ""),
             f"- model: {report.get('model_class', '?')}"
             + (f", phase {report['phase']}" if report.get("phase") else ""),
             f"- wall time: {report.get('seconds', 0):.1f} s", "",
             "## What a listener would notice", "", listener_summary(summary["overall"]), "",
             "## Overall", "", markdown_table({"all": summary["overall"]}, ""), "",
             "## Per instrument family", "", markdown_table(summary["by_family"], "family"), "",
             *_level_table(summary["by_family"], "family"),
             "## Per pitch octave (C4 = MIDI 60 starts octave 4)", "",
             markdown_table(summary["by_octave"], "octave"), "",
             *_level_table(summary["by_octave"], "octave"),
             "## Definitions", "",
             "- wav MSE, spectral L1: the paper's Table 1 columns; spectral L1 is the mean of "
             "|log(1+|STFT x|²) − log(1+|STFT x̂|²)| (n_fft 1024, hop 256).",
             f"- MR-STFT: {MRSTFT_DESCRIPTION}",
             f"- pitch: {PITCH_DESCRIPTION} 'pitch acc. (real)' is the same tracker on the real notes: "
             "the ceiling the tracker allows on this data.",
             f"- FD logmel: Fréchet distance between Gaussians fitted to real and generated notes over "
             f"{EMBEDDING_DESCRIPTION} Biased upward for small groups; compare only at equal note counts.",
             f"- loudness: {LOUDNESS_DESCRIPTION}",
             f"- silence: {SILENCE_DESCRIPTION}"]
    if report.get("figures"):
        parts += ["", "## Figures", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in report["figures"]]
    return "\n".join(parts) + "\n"


def _level_table(rows: Mapping[str, Mapping[str, Any]], first: str) -> list[str]:
    """:data:`LEVEL_COLUMNS` as Markdown lines (with a blank line after), or none without level columns."""
    if not any("median_rms_db" in r or "spectral_l1_silence" in r for r in rows.values()):
        return []
    return [markdown_table(rows, first, LEVEL_COLUMNS), ""]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_report(report: Mapping[str, Any], out: str | Path, notes: Mapping[str, np.ndarray] | None = None,
                 stem: str = "evaluation") -> dict[str, Path]:
    """Write ``<stem>.md``, ``<stem>.json`` and, given per-note columns, ``<stem>_notes.csv``.

    Returns:
        ``{"markdown": path, "json": path[, "notes": path]}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / f"{stem}.md", "json": out / f"{stem}.json"}
    paths["markdown"].write_text(format_markdown(report))
    paths["json"].write_text(json.dumps(_jsonable(report), indent=2) + "\n")
    if notes is not None:
        import csv

        keys = [k for k, v in notes.items() if np.ndim(v) == 1]
        paths["notes"] = out / f"{stem}_notes.csv"
        with paths["notes"].open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(keys)
            for i in range(len(notes[keys[0]])):
                writer.writerow([_jsonable(np.asarray(notes[k])[i]) for k in keys])
    return paths


# --------------------------------------------------------------------------- models and Ray

def build_note_model(source: str | Path | bytes, device: str = "cpu") -> tuple[Callable[..., np.ndarray], dict]:
    """A function that produces each note's model output, from a checkpoint.

    A SING checkpoint generates the note from its symbols; an Autoencoder checkpoint
    (phase 1) reconstructs the real note, which is how the paper's autoencoder rows are scored.

    Args:
        source: a checkpoint path or its bytes.
    Returns:
        ``(fn, info)``: ``fn(instrument_str, pitch, velocity, wav) -> (B, T) float32`` with
        (B,) arrays and ``wav`` (B, T) the real notes; ``info`` holds ``model_class``, ``phase``,
        ``instruments`` (the vocabulary, SING only) and ``config``.
    """
    from .checkpoint import load_model
    from .generate import Generator
    from .models import SING, Autoencoder

    model, ckpt = load_model(source, map_location=device)
    info = {"model_class": type(model).__name__, "phase": ckpt.get("phase"), "config": ckpt.get("config"),
            "instruments": list(ckpt.get("extra", {}).get("instruments") or [])}
    if isinstance(model, SING):
        if not info["instruments"]:
            raise UserError("the SING checkpoint has no instrument vocabulary (extra.instruments)")
        generator = Generator(model, info["instruments"], device=device)

        def fn(instrument_str, pitch, velocity, wav):
            return generator.generate(list(instrument_str), [int(p) for p in pitch], [int(v) for v in velocity])
    elif isinstance(model, Autoencoder):
        model.eval()

        @torch.inference_mode()
        def fn(instrument_str, pitch, velocity, wav):
            x = torch.as_tensor(np.asarray(wav, dtype=np.float32), device=device)
            return model(x, torch.as_tensor(np.asarray(pitch, dtype=np.int64), device=device)).float().cpu().numpy()
    else:
        raise UserError(f"a {type(model).__name__} checkpoint makes no audio: evaluate a SING "
                        "(finetune) or Autoencoder (autoencoder phase) checkpoint")
    return fn, info


def keep_note(note_str: str, fraction: float, seed: int = 0) -> bool:
    """A stable pseudo-random choice of ``fraction`` of the notes, by a hash of their name.

    The same notes are kept whatever the shards, block sizes or worker count, and they
    spread over all instruments and pitches (taking the first N rows would not: rows are
    sorted by name, so by instrument).
    """
    if fraction >= 1.0:
        return True
    digest = hashlib.blake2b(f"{seed}:{note_str}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


def _subsample(batch: dict[str, np.ndarray], fraction: float, seed: int) -> dict[str, np.ndarray]:
    keep = np.array([keep_note(str(s), fraction, seed) for s in batch["note_str"]], dtype=bool)
    return {k: v[keep] for k, v in batch.items()}


def sample_split(dataset: str, split: str, max_notes: int | None = None, seed: int = 0):
    """One split as a Ray Dataset: every note, or a stable sample of at most ``max_notes``.

    The sample is chosen by :func:`keep_note`, so every caller scoring the same split
    with the same ``max_notes`` and ``seed`` gets the same notes.

    Returns:
        ``(dataset, split_size)``: the split's size from the manifest (None if it does not say).
    """
    from .data.dataset import load_manifest, make_note_dataset

    split_size = load_manifest(dataset).get("splits", {}).get(split, {}).get("accepted")
    ds = make_note_dataset(dataset, split)
    if max_notes is not None and split_size and max_notes < split_size:
        # Over-sample by a margin so the hash-chosen sample rarely falls short of max_notes.
        fraction = min(1.0, 1.2 * max_notes / split_size + 8 / split_size)
        ds = ds.map_batches(_subsample, batch_format="numpy", fn_kwargs={"fraction": fraction, "seed": seed})
    if max_notes is not None:
        ds = ds.limit(max_notes)
    return ds, split_size


PASSTHROUGH_COLUMNS = ("note_str", "instrument_str", "instrument_family_str", "pitch", "velocity")


class NoteScorer:
    """Ray Data UDF (actor pool): generate each note of a batch and score it against the real one.

    Args:
        checkpoint: the checkpoint's bytes, or a Ray ObjectRef to them (one copy in the object
            store for all actors, so workers need no shared file system).
        with_pitch, with_reference_pitch, with_embedding: as :func:`note_metrics`.
        device: torch device of the model.
    """

    def __init__(self, checkpoint, with_pitch: bool = True, with_reference_pitch: bool = True,
                 with_embedding: bool = True, device: str = "cpu"):
        import ray

        data = ray.get(checkpoint) if isinstance(checkpoint, ray.ObjectRef) else checkpoint
        self.fn, _ = build_note_model(data, device=device)
        self.options = dict(with_pitch=with_pitch, with_reference_pitch=with_reference_pitch,
                            with_embedding=with_embedding)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Args: a numpy batch with ``wav`` (B, T) and the metadata. Returns: per-note metric columns."""
        from .data.dataset import WAV_COLUMN

        real = np.asarray(batch[WAV_COLUMN], dtype=np.float32)
        generated = self.fn(batch["instrument_str"], batch["pitch"], batch["velocity"], real)
        metrics = note_metrics(generated, real, batch["pitch"], **self.options)
        out = {k: np.asarray(batch[k]) for k in PASSTHROUGH_COLUMNS}
        out.update(metrics)
        return out


@dataclass
class EvaluationResult:
    """What :func:`evaluate_model` produced.

    Attributes:
        report: the JSON-able report (``summary`` holds overall / by_family / by_octave).
        notes: per-note columns (metrics and metadata), sorted by ``note_str``.
        paths: files written (``markdown``, ``json``, ``notes``, and figures by name).
        run_id: the MLflow run the report was logged to, or None.
    """

    report: dict
    notes: dict[str, np.ndarray]
    paths: dict[str, Path] = field(default_factory=dict)
    run_id: str | None = None


def scorer_cpus(cluster_cpus: float, num_workers: int) -> float:
    """The CPUs each of ``num_workers`` scoring actors reserves: one, unless that would leave
    no CPU for the tasks that read the notes they score (``sing-ray evaluate --num-cpus 1``
    waited forever); then a share of what is left after one (none on a 1-CPU Ray). A cluster
    with no CPU yet (an autoscaling one) gets one per actor, as it will start them."""
    if 1 <= cluster_cpus < num_workers + 1:
        return max(0.0, (cluster_cpus - 1) / num_workers)
    return 1.0


def score_split(checkpoint: bytes, dataset: str, split: str = "test", *, max_notes: int | None = None,
                seed: int = 0, batch_size: int = 8, num_workers: int = 1, use_gpu: bool = False,
                with_pitch: bool = True, with_reference_pitch: bool = True,
                with_embedding: bool = True) -> tuple[dict[str, np.ndarray], int | None]:
    """Score every note of one split (or a stable sample of ``max_notes``) with Ray Data.

    Args:
        checkpoint: checkpoint bytes (SING or Autoencoder).
        dataset: an ingested dataset folder or URI.
        split: ``train``, ``valid`` or ``test``.
        max_notes: at most this many notes, chosen by :func:`keep_note` (None: all).
        batch_size: notes per model call.
        num_workers: actors in the pool, each holding one copy of the model.
    Returns:
        ``(notes, split_size)``: per-note columns sorted by note_str, and the split's size
        from the manifest (None if the manifest does not say).
    """
    import ray

    ds, split_size = sample_split(dataset, split, max_notes, seed)
    ref = ray.put(checkpoint)
    cpus = scorer_cpus(ray.cluster_resources().get("CPU", 0), num_workers)
    if cpus < 1:
        log.info("%d scoring actor(s) of %.2f reserved CPU each, leaving one for reading the notes",
                 num_workers, cpus)
    scored = ds.map_batches(
        NoteScorer, batch_format="numpy", batch_size=batch_size,
        fn_constructor_kwargs=dict(checkpoint=ref, with_pitch=with_pitch,
                                   with_reference_pitch=with_reference_pitch,
                                   with_embedding=with_embedding, device="cuda" if use_gpu else "cpu"),
        compute=ray.data.ActorPoolStrategy(size=num_workers), num_cpus=cpus, num_gpus=1 if use_gpu else 0)
    columns: dict[str, list[np.ndarray]] = {}
    for batch in scored.iter_batches(batch_format="numpy", batch_size=None):
        for k, v in batch.items():
            columns.setdefault(k, []).append(np.asarray(v))
    if not columns:
        raise UserError(f"{dataset}: the {split} split holds no notes to evaluate")
    notes = {k: np.concatenate(v) for k, v in columns.items()}
    order = np.argsort(notes["note_str"].astype(str), kind="stable")
    return {k: v[order] for k, v in notes.items()}, split_size


def score_split_here(checkpoint: bytes, dataset: str, split: str = "test", *, max_notes: int = 40,
                     seed: int = 0, with_pitch: bool = True, with_reference_pitch: bool = True,
                     with_embedding: bool = False) -> tuple[dict[str, np.ndarray], int | None, dict[str, np.ndarray]]:
    """:func:`score_split` for a few dozen notes: one Ray Data read, then generation and scoring here.

    The same notes (:func:`sample_split`) and the same numbers as :func:`score_split`, without
    its actor pool: for a few dozen notes, starting actors (a model load and the pitch
    tracker's first call in each) costs more than they save, and the audio can stay for
    figures instead of being read again. The notes' audio comes to the driver: keep
    ``max_notes`` small (256 KB per note and side).

    Args:
        checkpoint: checkpoint bytes (SING or Autoencoder).
        dataset, split: what to score.
        max_notes: at most this many notes, chosen by :func:`keep_note`.
    Returns:
        ``(notes, split_size, audio)``: per-note columns sorted by note_str (as :func:`score_split`),
        the split's size, and ``{"real": (N, T), "generated": (N, T)}`` in the same order.
        UserError when the split holds no notes.
    """
    from .data.dataset import WAV_COLUMN

    sample, split_size = sample_split(dataset, split, max_notes, seed)
    rows = sample.take_all()
    if not rows:
        raise UserError(f"{dataset}: the {split} split holds no notes to evaluate")
    rows.sort(key=lambda r: str(r["note_str"]))
    columns = {k: np.array([r[k] for r in rows]) for k in PASSTHROUGH_COLUMNS}
    real = np.stack([np.asarray(r[WAV_COLUMN], dtype=np.float32) for r in rows])
    fn, _ = build_note_model(checkpoint)
    generated = fn(columns["instrument_str"], columns["pitch"], columns["velocity"], real)
    columns.update(note_metrics(generated, real, columns["pitch"], with_pitch=with_pitch,
                                with_reference_pitch=with_reference_pitch, with_embedding=with_embedding))
    return columns, split_size, {"real": real, "generated": generated}


def fetch_notes(dataset: str, split: str, note_strs: Iterable[str]) -> dict[str, np.ndarray]:
    """The real audio and metadata of a few named notes of a split (for figures).

    Returns:
        columns of the dataset for those notes, ``wav`` (K, T), in the order of ``note_strs``.
    """
    from .data.dataset import WAV_COLUMN, make_note_dataset

    wanted = list(note_strs)
    chosen = set(wanted)
    ds = make_note_dataset(dataset, split).map_batches(
        lambda b: {k: v[np.isin(b["note_str"].astype(str), list(chosen))] for k, v in b.items()},
        batch_format="numpy")
    rows = {str(r["note_str"]): r for r in ds.take_all()}
    missing = [s for s in wanted if s not in rows]
    if missing:
        raise UserError(f"{dataset}: notes {missing[:3]} not found in the {split} split")
    keys = list(rows[wanted[0]].keys())
    out = {k: np.stack([np.asarray(rows[s][k]) for s in wanted]) for k in keys if k != WAV_COLUMN}
    out[WAV_COLUMN] = np.stack([np.asarray(rows[s][WAV_COLUMN], dtype=np.float32) for s in wanted])
    return out


def check_vocabulary(model_instruments: Sequence[str], dataset_instruments: Sequence[str]) -> None:
    """UserError when the dataset has instruments the model never learnt."""
    unknown = sorted(set(dataset_instruments) - set(model_instruments))
    if unknown:
        raise UserError(f"the dataset has {len(unknown)} instrument(s) the model does not know "
                        f"(e.g. {', '.join(unknown[:3])}): evaluate on the dataset it was trained on")


def evaluate_model(model: str | Path, dataset: str, split: str = "test", *, out: str | Path | None = None,
                   max_notes: int | None = None, seed: int = 0, batch_size: int = 8, num_workers: int = 1,
                   use_gpu: bool = False, with_pitch: bool = True, with_reference_pitch: bool = True,
                   with_embedding: bool = True, figures: bool = True, tracking_uri: str | None = None,
                   experiment: str | None = "sing-ray", log_to_mlflow: bool = True,
                   training_run: str | None = None) -> EvaluationResult:
    """Evaluate a model on a dataset split: metrics, report, figures, MLflow run.

    Needs Ray initialised (or starts a default local one).

    Args:
        model: a checkpoint path or an MLflow URI (``models:/sing/3``, ``runs:/<id>/sing``).
        dataset: an ingested dataset folder or URI.
        split: the split scored (the paper's Table 1 uses ``test`` and ``train``).
        out: folder for the report and figures (default ``evaluation/<model stem>-<split>``).
        max_notes: score at most this many notes (a stable hash sample).
        figures: draw the embedding, spectrogram and training-curve figures.
        tracking_uri, experiment: where the MLflow run goes; ``log_to_mlflow=False`` skips it.
        training_run: the MLflow parent run of the model's training, for the training curves;
            found from a ``models:/`` or ``runs:/`` URI when not given.
    Returns:
        an :class:`EvaluationResult`.
    """
    from .data.dataset import load_manifest
    from .tracking import resolve_model

    started, started_at = time.monotonic(), time.time()
    path = resolve_model(model, tracking_uri)
    checkpoint = path.read_bytes()
    _, info = build_note_model(checkpoint)
    manifest = load_manifest(dataset)
    if info["model_class"] == "SING":
        check_vocabulary(info["instruments"], manifest.get("instruments", []))
    out = Path(out) if out is not None else Path("evaluation") / f"{_slug(model)}-{split}"
    log.info("evaluating %s (%s) on %s [%s]%s", model, info["model_class"], dataset, split,
             f", at most {max_notes} notes" if max_notes else "")
    notes, split_size = score_split(
        checkpoint, dataset, split, max_notes=max_notes, seed=seed, batch_size=batch_size,
        num_workers=num_workers, use_gpu=use_gpu, with_pitch=with_pitch,
        with_reference_pitch=with_reference_pitch, with_embedding=with_embedding)
    report: dict[str, Any] = {
        "model": str(model), "checkpoint": str(path), "model_class": info["model_class"],
        "phase": info["phase"], "dataset": str(dataset), "split": split,
        "num_notes": int(len(notes["note_str"])), "split_size": split_size, "max_notes": max_notes,
        "seed": seed, "summary": summarize(notes),
        "definitions": {"embedding": EMBEDDING_DESCRIPTION, "pitch": PITCH_DESCRIPTION,
                        "mrstft": MRSTFT_DESCRIPTION, "pitch_tolerance_cents": PITCH_TOLERANCE_CENTS,
                        "loudness": LOUDNESS_DESCRIPTION, "silence": SILENCE_DESCRIPTION,
                        "near_silent_db": NEAR_SILENT_DB, "rms_db_floor": RMS_DB_FLOOR},
    }
    paths: dict[str, Path] = {}
    if figures:
        training_run = training_run or find_training_run(str(model), tracking_uri, search_paths=log_to_mlflow)
        paths.update(draw_figures(checkpoint, info, notes, dataset, split, out, tracking_uri, training_run))
        report["figures"] = [str(p) for p in paths.values()]
    report["seconds"] = time.monotonic() - started
    report["started_at"] = started_at
    paths.update(write_report(report, out, notes))
    run_id = None
    if log_to_mlflow:
        run_id = log_evaluation(report, paths, tracking_uri, experiment, manifest=manifest)
        report["mlflow_run_id"] = run_id
    overall = report["summary"]["overall"]
    log.info("%s [%s], %d notes: spectral L1 %.4f (silence's %.4f), wav MSE %.5f, %d near-silent; report in %s",
             model, split, overall["num_notes"], overall["spectral_l1"], overall["spectral_l1_silence"],
             overall["wav_mse"], overall["num_near_silent"], paths["markdown"])
    if scores_like_silence(overall):
        log.warning("%s scores no better than silence on %s [%s]", model, dataset, split)
    return EvaluationResult(report=report, notes=notes, paths=paths, run_id=run_id)


def _slug(model: str | Path) -> str:
    """A folder name for a model: the file stem of a path, the URI with separators replaced."""
    text = str(model)
    if ":/" not in text:
        return Path(text).stem or "model"
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in text).strip("_") or "model"


def draw_figures(checkpoint: bytes, info: Mapping, notes: Mapping[str, np.ndarray], dataset: str, split: str,
                 out: Path, tracking_uri: str | None, training_run: str | None,
                 max_families: int = 4, max_pitches: int = 4) -> dict[str, Path]:
    """The evaluation's figures: instrument embeddings (SING), spectrogram grid, training curves.

    Returns:
        ``{figure name: PNG path}`` for the figures that could be drawn.
    """
    from . import figures as fig
    from .checkpoint import load_model

    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if info["model_class"] == "SING":
        model, _ = load_model(checkpoint)
        paths["instrument_embeddings"] = fig.plot_instrument_embeddings(
            model, info["instruments"], out / "instrument_embeddings.png")
    sheet = draw_spectrogram_sheet(checkpoint, notes, dataset, split, out / "spectrograms.png",
                                   max_families, max_pitches)
    if sheet is not None:
        paths["spectrograms"] = sheet
    if training_run:
        try:
            paths["training_curves"] = fig.plot_training_curves(training_run, out / "training_curves.png",
                                                                tracking_uri)
        except UserError as err:
            log.warning("no training curves: %s", err)
    return paths


def draw_spectrogram_sheet(checkpoint: bytes, notes: Mapping[str, np.ndarray], dataset: str, split: str,
                           path: str | Path, max_families: int = 4, max_pitches: int = 4,
                           audio: Mapping[str, np.ndarray] | None = None) -> Path | None:
    """Real beside generated spectrograms of a few scored notes (:func:`figures.plot_spectrogram_grid`).

    The notes are chosen among ``notes`` by :func:`figures.choose_grid_notes` (families with most
    notes as rows, pitches low to high as columns); without ``audio`` their real audio is fetched
    from the split and the model's output generated here, on the driver.

    Args:
        checkpoint: the model's checkpoint bytes.
        notes: per-note columns of the scored notes (``note_str``, ``instrument_family_str``,
            ``pitch``, ``velocity``).
        dataset, split: where the real notes are.
        path: the PNG to write.
        audio: ``{"real": (N, T), "generated": (N, T)}`` in the order of ``notes``' rows, when
            already at hand (:func:`score_split_here`).
    Returns:
        the path, or None when there are no notes to draw.
    """
    from . import figures as fig
    from .data.dataset import WAV_COLUMN

    chosen = fig.choose_grid_notes(notes, max_families, max_pitches)
    if not chosen:
        return None
    if audio is not None:
        row = {str(name): i for i, name in enumerate(np.asarray(notes["note_str"]))}
        idx = [row[name] for name in chosen]
        real = {k: np.asarray(notes[k])[idx] for k in ("instrument_family_str", "pitch")}
        real[WAV_COLUMN] = np.asarray(audio["real"])[idx]
        generated = np.asarray(audio["generated"])[idx]
    else:
        real = fetch_notes(dataset, split, chosen)
        fn, _ = build_note_model(checkpoint)
        generated = fn(real["instrument_str"], real["pitch"], real["velocity"], real[WAV_COLUMN])
    labels = [f"{s} ({fam})" for s, fam in zip(chosen, real["instrument_family_str"])]
    return fig.plot_spectrogram_grid(
        real[WAV_COLUMN], generated, labels, path,
        families=[str(f) for f in real["instrument_family_str"]], pitches=[int(p) for p in real["pitch"]])


def find_training_run(model: str, tracking_uri: str | None = None, search_paths: bool = True) -> str | None:
    """The MLflow parent run of the training that produced ``model``, or None.

    A ``runs:/`` or ``models:/`` URI names its run (the training pipeline logs the model in
    its parent run; a phase run leads to its parent). A checkpoint file under a training run's
    folder (``<run dir>/models/<phase>.pt``) is matched by the run's ``sing_ray.run_dir`` tag
    when ``search_paths`` is true.
    """
    import mlflow

    from .tracking import configure_mlflow

    run_id = None
    if model.startswith("runs:/"):
        configure_mlflow(tracking_uri)
        run_id = model[len("runs:/"):].split("/", 1)[0]
    elif model.startswith("models:/"):
        configure_mlflow(tracking_uri)
        name_version = model[len("models:/"):].split("/")
        client = mlflow.MlflowClient()
        try:
            if len(name_version) >= 2 and name_version[1].isdigit():
                run_id = client.get_model_version(name_version[0], name_version[1]).run_id
            elif "@" in name_version[0]:
                name, alias = name_version[0].split("@", 1)
                run_id = client.get_model_version_by_alias(name, alias).run_id
        except Exception as err:  # MLflow raises its own exception types per store
            log.warning("cannot find the training run of %s: %s", model, err)
            return None
    elif search_paths:
        run_dir = Path(model).resolve().parent.parent
        configure_mlflow(tracking_uri)
        try:
            found = mlflow.search_runs(search_all_experiments=True, output_format="list", max_results=1,
                                       filter_string=f"tags.`sing_ray.run_dir` = '{run_dir}'")
        except Exception as err:
            log.debug("no training run found for %s: %s", model, err)
            return None
        return found[0].info.run_id if found else None
    if not run_id:
        return None
    try:
        run = mlflow.MlflowClient().get_run(run_id)
    except Exception as err:
        log.warning("cannot read run %s: %s", run_id, err)
        return None
    if run.data.tags.get("sing_ray.phase"):
        return run.data.tags.get("mlflow.parentRunId") or run_id
    return run_id


def log_evaluation(report: Mapping[str, Any], paths: Mapping[str, Path], tracking_uri: str | None = None,
                   experiment: str | None = "sing-ray", run_name: str | None = None,
                   nested: bool = False, manifest: Mapping[str, Any] | None = None) -> str:
    """Log an evaluation to MLflow: params, overall metrics (``<split>_<metric>``), report and figures.

    The run starts when the evaluation did (``report["started_at"]``, epoch seconds), so the
    UI shows how long the work took. With the dataset's ``manifest``, the dataset is the
    run's MLflow dataset input.

    Returns:
        the run id.
    """
    import mlflow
    from mlflow.tracking.fluent import _get_experiment_id

    from .tracking import configure_mlflow, log_dataset_input

    configure_mlflow(tracking_uri, experiment)
    client = mlflow.MlflowClient()
    split = report["split"]
    name = run_name or f"evaluate-{Path(str(report['model'])).name}-{split}"
    parent = mlflow.active_run() if nested else None
    tags = {"sing_ray.stage": "evaluate", "sing_ray.model": str(report["model"])}
    if parent is not None:
        tags["mlflow.parentRunId"] = parent.info.run_id
    started = report.get("started_at")
    created = client.create_run(parent.info.experiment_id if parent is not None else _get_experiment_id(),
                                start_time=int(started * 1000) if started else None, run_name=name, tags=tags)
    if manifest is not None:
        log_dataset_input(client, created.info.run_id, str(report["dataset"]), dict(manifest), f"evaluation ({split})")
    with mlflow.start_run(run_id=created.info.run_id, nested=parent is not None) as run:
        mlflow.log_params({"model": str(report["model"]), "dataset": str(report["dataset"]), "split": split,
                           "num_notes": report["num_notes"], "max_notes": report.get("max_notes"),
                           "model_class": report.get("model_class"), "embedding": EMBEDDING_NAME})
        metrics = {f"{split}_{k}": float(v) for k, v in report["summary"]["overall"].items()
                   if isinstance(v, (int, float)) and math.isfinite(float(v))}
        mlflow.log_metrics(metrics)
        for path in paths.values():
            mlflow.log_artifact(str(path), artifact_path="evaluation")
        return run.info.run_id
