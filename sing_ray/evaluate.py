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
- timbre (:mod:`sing_ray.timbre`): ``lts_db`` and ``lts_loud_db``, the distance in dB between the
  long-term spectra of the generated and the real note (all 64 mel bands; the loud ones), and
  ``envelope_db``, between their frame energies: blind to phase and vibrato; with silence's.
- the nearest-key sampler (``nk_`` columns): the training split's note of the same instrument
  and velocity at the nearest other pitch, resampled to the note's pitch, scored with the same
  metrics: what a user holding the training notes gets without any model.

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

from . import timbre
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

# The timbre distances of :mod:`sing_ray.timbre`, per note; summaries give their medians.
TIMBRE_METRICS = ("lts_db", "lts_loud_db", "envelope_db")
# The nearest-key sampler's per-note columns are the model's names behind this prefix.
NEAREST_KEY_PREFIX = "nk_"
# Which of :func:`note_metrics`' columns the nearest key gets (the real notes' own columns,
# such as rms_db_real or spectral_l1_silence, are the model's already).
NEAREST_KEY_METRICS = ("wav_mse", "spectral_l1", "mrstft", "mrstft_sc", "mrstft_logmag", "rms_db", "rms_db_diff",
                       *TIMBRE_METRICS)
# Where the nearest key comes from: the notes a user of the model would hold.
NEAREST_KEY_SPLIT = "train"
# Training notes scored beside the held-out ones by default (capped at the held-out count).
DEFAULT_TRAIN_NOTES = 70


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
        minus real, dB); ``lts_db``, ``lts_loud_db``, ``envelope_db`` (B,): the timbre distances
        (:func:`timbre.timbre_metrics`), and the same of an all-zero output as ``lts_db_silence``,
        ``lts_loud_db_silence``, ``envelope_db_silence``; with pitch: ``f0`` and ``cents`` (B,), NaN
        where untracked; with the reference, also ``f0_real`` and ``cents_real``; with embeddings:
        ``emb_real`` and ``emb_generated`` (B, 64).
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
    result.update(timbre.timbre_metrics(out_t, ref_t, sample_rate))
    result.update({f"{k}_silence": v for k, v in
                   timbre.timbre_metrics(torch.zeros_like(ref_t), ref_t, sample_rate).items()})
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
        ``pitch_accuracy_real``; with embeddings ``fd_logmel`` (None below ``min_fd_notes``);
        with timbre columns ``median_lts_db``, ``median_lts_loud_db``, ``median_envelope_db`` and
        silence's (``median_lts_db_silence``, ...); with the nearest key's columns (``nk_*``),
        its figures under the same names behind ``nk_`` (:func:`summarize_nearest_key`).
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
    for key in TIMBRE_METRICS:
        for name in (key, f"{key}_silence"):
            if name in notes:
                out[f"median_{name}"] = float(np.median(np.asarray(notes[name], dtype=np.float64)[mask]))
    if f"{NEAREST_KEY_PREFIX}lts_db" in notes:
        out.update(summarize_nearest_key(notes, mask, min_fd_notes))
    return out


# Figures of the real notes or of silence: the model's summary has them already.
_REAL_SUMMARY_KEYS = ("median_rms_db_real", "num_near_silent_real", "pitch_accuracy_real", "spectral_l1_silence",
                      *(f"median_{k}_silence" for k in TIMBRE_METRICS))


def summarize_nearest_key(notes: Mapping[str, np.ndarray], mask: np.ndarray,
                          min_fd_notes: int = 2) -> dict[str, Any]:
    """The nearest key's figures over the notes of ``mask`` that have one.

    Args:
        notes: per-note columns with the nearest key's (``nk_lts_db``, ...; NaN where the note's
            instrument has no other training pitch at its velocity).
        mask: (N,) bool, the group.
    Returns:
        :func:`summarize_group`'s figures of the nearest key behind ``nk_`` (``nk_num_notes``:
        the notes it has, ``nk_pitch_accuracy``, ``nk_median_lts_db``, ...; not the real notes'
        or silence's, which are the model's); ``num_nearest_key_missing``: the group's notes
        without one; ``num_closer_than_nearest_key`` and ``closer_than_nearest_key_share``: the
        notes whose generated long-term spectrum is nearer the real one than the nearest key's
        (``lts_db < nk_lts_db``), over the notes with a nearest key (None without any).
    """
    p = NEAREST_KEY_PREFIX
    has = mask & np.isfinite(np.asarray(notes[f"{p}lts_db"], dtype=np.float64))
    view = {k[len(p):]: v for k, v in notes.items() if k.startswith(p)}
    for key in ("rms_db_real", "spectral_l1_silence", "emb_real"):
        if key in notes:
            view[key] = notes[key]
    summary = summarize_group(view, has, min_fd_notes)
    out = {f"{p}{k}": v for k, v in summary.items() if k not in _REAL_SUMMARY_KEYS}
    k = int(has.sum())
    out["num_nearest_key_missing"] = int(mask.sum()) - k
    closer = int(np.nansum(np.asarray(notes["closer_than_nearest_key"], dtype=np.float64)[has])) \
        if "closer_than_nearest_key" in notes else 0
    out["num_closer_than_nearest_key"] = closer
    out["closer_than_nearest_key_share"] = closer / k if k and "closer_than_nearest_key" in notes else None
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

NEAREST_KEY_DESCRIPTION = (
    "the nearest-key sampler: for each note, the training split's note of the same instrument and velocity "
    "at the nearest pitch other than the note's own (the lower on a tie), resampled to the note's pitch as a "
    "sampler stretches its nearest key (soxr, shorter when shifted up), cut or zero-padded to 4 s, and scored "
    "against the real note with the same metrics. A note whose instrument has no other training pitch at "
    "that velocity has none: its nk_ columns are NaN, it is counted as missing and left out of the nearest "
    "key's figures. 'closer than the nearest key': the model's lts_db below the nearest key's, over the notes "
    "that have one.")
TRAIN_NOTES_DESCRIPTION = (
    "training notes: a stable hash sample of the training split scored the same way, beside the held-out "
    "notes: a model far better on its training notes than on held-out ones fits rather than generalises.")

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
_LEVEL_KEYS = ("median_rms_db", "median_rms_db_real", "nk_median_rms_db")
# Timbre beside the nearest key and silence, per group.
TIMBRE_COLUMNS = (("num_notes", "notes", "{:d}"), ("median_lts_db", "lts dB", "{:.1f}"),
                  ("nk_median_lts_db", "nearest key lts dB", "{:.1f}"),
                  ("median_lts_db_silence", "silence's lts dB", "{:.1f}"),
                  ("median_lts_loud_db", "loud-band lts dB", "{:.1f}"),
                  ("nk_median_lts_loud_db", "nearest key loud-band lts dB", "{:.1f}"),
                  ("median_envelope_db", "envelope dB", "{:.1f}"),
                  ("nk_median_envelope_db", "nearest key envelope dB", "{:.1f}"),
                  ("median_envelope_db_silence", "silence's envelope dB", "{:.1f}"),
                  ("closer_than_nearest_key_share", "closer than nearest key", "{:.0%}"),
                  ("num_nearest_key_missing", "no nearest key", "{:d}"))
# Held-out beside training notes: the model's figures, the nearest key's and silence's.
FIT_COLUMNS = (("num_notes", "notes", "{:d}"), ("pitch_accuracy", "in tune", "{:.1%}"),
               ("pitch_accuracy_real", "real in tune", "{:.1%}"),
               ("nk_pitch_accuracy", "nearest key in tune", "{:.1%}"),
               ("median_abs_rms_db_diff", "\\|gen − real\\| dB", "{:.1f}"),
               ("nk_median_abs_rms_db_diff", "nearest key \\|gen − real\\| dB", "{:.1f}"),
               ("spectral_l1_vs_silence", "L1 / silence's", "{:.2f}"),
               ("nk_spectral_l1_vs_silence", "nearest key L1 / silence's", "{:.2f}"),
               ("median_lts_db", "lts dB", "{:.1f}"), ("nk_median_lts_db", "nearest key lts dB", "{:.1f}"),
               ("median_lts_db_silence", "silence's lts dB", "{:.1f}"),
               ("median_envelope_db", "envelope dB", "{:.1f}"),
               ("nk_median_envelope_db", "nearest key envelope dB", "{:.1f}"),
               ("closer_than_nearest_key_share", "closer than nearest key", "{:.0%}"))


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
                 "spectral_l1_vs_silence", "lts_db", "lts_loud_db", "envelope_db", "closer")
SHORT_LISTENER_ROWS = ("in_tune", "level_diff", "near_silent", "spectral_l1", "spectral_l1_vs_silence",
                       "lts_db", "envelope_db", "closer")


def listener_table(overall: Mapping[str, Any], rows: Sequence[str] = LISTENER_ROWS, label: str = "notes") -> str:
    """The model's scores beside the real notes', the nearest key's and an all-zero output's.

    Args:
        overall: one group's summary (:func:`summarize_group`).
        rows: which of :data:`LISTENER_ROWS`; a row whose numbers are absent is left out.
        label: what the notes are, in the first heading (``70 notes``, ``70 training notes``).
    Returns:
        a Markdown table with columns *model*, *real notes*, *nearest key (sampler)* (when the
        summary has the nearest key's figures) and *silence (all-zero output)*; a cell that
        does not apply is "–".
    """
    n = int(overall.get("num_notes") or 0)
    g = overall.get
    with_nk = any(k.startswith(NEAREST_KEY_PREFIX) for k in overall)
    k_nk = int(g("nk_num_notes") or 0)

    def level(key: str) -> str:
        return _cell(g(key), "{:.1f}", key)

    def nk(key: str, fmt: str) -> str:
        return _cell(g(f"{NEAREST_KEY_PREFIX}{key}"), fmt, f"{NEAREST_KEY_PREFIX}{key}")

    closer = g("num_closer_than_nearest_key")
    # name: (label, key that must be present, model, real notes, nearest key, silence)
    table = {
        "in_tune": (f"in tune (f0 within {PITCH_TOLERANCE_CENTS:g} cents)", "pitch_accuracy",
                    _cell(g("pitch_accuracy"), "{:.1%}"), _cell(g("pitch_accuracy_real"), "{:.1%}"),
                    nk("pitch_accuracy", "{:.1%}"), "0.0%"),
        "level": ("median loudness (RMS dBFS)", "median_rms_db", level("median_rms_db"),
                  level("median_rms_db_real"), nk("median_rms_db", "{:.1f}"), "silent"),
        "level_diff": ("median loudness difference, generated − real (dB)", "median_rms_db_diff",
                       _cell(g("median_rms_db_diff"), "{:+.1f}"), "0.0", nk("median_rms_db_diff", "{:+.1f}"), "−∞"),
        "abs_level_diff": ("median \\|generated − real\\| (dB)", "median_abs_rms_db_diff",
                           _cell(g("median_abs_rms_db_diff"), "{:.1f}"), "0.0",
                           nk("median_abs_rms_db_diff", "{:.1f}"), "∞"),
        "near_silent": (f"near-silent notes (RMS below {NEAR_SILENT_DB:g} dBFS)", "num_near_silent",
                        _share(g("num_near_silent"), n), _share(g("num_near_silent_real"), n),
                        _share(g("nk_num_near_silent"), k_nk), _share(n, n)),
        "spectral_l1": ("spectral L1 (Table 1)", "spectral_l1", _cell(g("spectral_l1"), "{:.4f}"), "0.0000",
                        nk("spectral_l1", "{:.4f}"), _cell(g("spectral_l1_silence"), "{:.4f}")),
        "spectral_l1_vs_silence": ("spectral L1 / silence's", "spectral_l1_vs_silence",
                                   _cell(g("spectral_l1_vs_silence"), "{:.2f}"), "0.00",
                                   nk("spectral_l1_vs_silence", "{:.2f}"), "1.00"),
        "lts_db": ("median long-term spectrum distance, lts_db (dB)", "median_lts_db",
                   _cell(g("median_lts_db"), "{:.1f}"), "0.0", nk("median_lts_db", "{:.1f}"),
                   _cell(g("median_lts_db_silence"), "{:.1f}")),
        "lts_loud_db": (f"median distance over the loud bands (within {timbre.LTS_LOUD_DB:g} dB), lts_loud_db (dB)",
                        "median_lts_loud_db", _cell(g("median_lts_loud_db"), "{:.1f}"), "0.0",
                        nk("median_lts_loud_db", "{:.1f}"), _cell(g("median_lts_loud_db_silence"), "{:.1f}")),
        "envelope_db": ("median envelope distance, envelope_db (dB)", "median_envelope_db",
                        _cell(g("median_envelope_db"), "{:.1f}"), "0.0", nk("median_envelope_db", "{:.1f}"),
                        _cell(g("median_envelope_db_silence"), "{:.1f}")),
        "closer": ("closer to the real note than the nearest key (lts_db)", "num_closer_than_nearest_key",
                   _share(closer, k_nk), "–", "–", "–"),
    }
    heading = ["model", "real notes"] + (["nearest key (sampler)"] if with_nk else []) + ["silence (all-zero output)"]
    lines = [f"| {n} {label} | " + " | ".join(heading) + " |", "| --- |" + " ---: |" * len(heading)]
    for name in rows:
        text, key, model, real, near, silence = table[name]
        if key in overall:
            lines.append("| " + " | ".join([text, model, real] + ([near] if with_nk else []) + [silence]) + " |")
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
    if g("median_lts_db") is not None:
        others = [f"the nearest key: {g('nk_median_lts_db'):.1f} dB"] if g("nk_median_lts_db") is not None else []
        if g("median_lts_db_silence") is not None:
            others.append(f"silence: {g('median_lts_db_silence'):.1f} dB")
        text = (f"Timbre: the long-term spectrum lies a median {g('median_lts_db'):.1f} dB from the real notes'"
                + (f" ({'; '.join(others)})" if others else "") + ".")
        share, k = g("closer_than_nearest_key_share"), int(g("nk_num_notes") or 0)
        if share is not None:
            text += (f" The model is closer than the nearest key on {g('num_closer_than_nearest_key')} of {k} "
                     f"notes ({share:.0%}).")
        out.append(text)
    missing = g("num_nearest_key_missing")
    if missing:
        out.append(f"{missing} of {n} notes have no nearest key (no other training pitch of their instrument "
                   "at their velocity): the nearest key's figures leave them out.")
    return out


def listener_summary(overall: Mapping[str, Any], rows: Sequence[str] = LISTENER_ROWS, label: str = "notes") -> str:
    """:func:`listener_verdict` as a bullet list, then :func:`listener_table`."""
    verdict = listener_verdict(overall)
    return "\n".join([f"- {line}" for line in verdict] + ([""] if verdict else [])
                     + [listener_table(overall, rows, label)])


def fit_rows(report: Mapping[str, Any], group: str | None = None) -> dict[str, Mapping[str, Any]]:
    """Held-out beside training notes, as :func:`markdown_table` rows (for :data:`FIT_COLUMNS`).

    Args:
        report: an evaluation report with ``train_notes`` (:func:`evaluate_model`).
        group: None for the overall figures, else a family name (``by_family``).
    Returns:
        ``{"held-out (<split>)": summary, "training notes": summary}``; a family one side lacks is left out.
    """
    rows = {}
    for name, summary in ((f"held-out ({report['split']})", report["summary"]),
                          ("training notes", (report.get("train_notes") or {}).get("summary"))):
        if summary is None:
            continue
        row = summary["overall"] if group is None else summary["by_family"].get(group)
        if row:
            rows[name] = row
    return rows


def fit_table(report: Mapping[str, Any], by_family: bool = False) -> str:
    """Held-out and training notes side by side (:data:`FIT_COLUMNS`), overall or per family."""
    if not by_family:
        return markdown_table(fit_rows(report), "scored", FIT_COLUMNS)
    families = sorted(set(report["summary"]["by_family"]) | set(report["train_notes"]["summary"]["by_family"]))
    rows = {f"{family}, {name}": row for family in families for name, row in fit_rows(report, family).items()}
    return markdown_table(rows, "family, scored", FIT_COLUMNS)


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
             *_fit_section(report),
             "## Overall", "", markdown_table({"all": summary["overall"]}, ""), "",
             "## Per instrument family", "", markdown_table(summary["by_family"], "family"), "",
             *_level_table(summary["by_family"], "family"),
             *_timbre_table(summary["by_family"], "family"),
             "## Per pitch octave (C4 = MIDI 60 starts octave 4)", "",
             markdown_table(summary["by_octave"], "octave"), "",
             *_level_table(summary["by_octave"], "octave"),
             *_timbre_table(summary["by_octave"], "octave"),
             "## Definitions", "",
             "- wav MSE, spectral L1: the paper's Table 1 columns; spectral L1 is the mean of "
             "|log(1+|STFT x|²) − log(1+|STFT x̂|²)| (n_fft 1024, hop 256).",
             f"- MR-STFT: {MRSTFT_DESCRIPTION}",
             f"- pitch: {PITCH_DESCRIPTION} 'pitch acc. (real)' is the same tracker on the real notes: "
             "the ceiling the tracker allows on this data.",
             f"- FD logmel: Fréchet distance between Gaussians fitted to real and generated notes over "
             f"{EMBEDDING_DESCRIPTION} Biased upward for small groups; compare only at equal note counts.",
             f"- loudness: {LOUDNESS_DESCRIPTION}",
             f"- silence: {SILENCE_DESCRIPTION}",
             f"- timbre: {timbre.DESCRIPTION}",
             f"- nearest key: {NEAREST_KEY_DESCRIPTION}",
             f"- {TRAIN_NOTES_DESCRIPTION}"]
    missing = [*(report.get("nearest_key") or {}).get("missing", []),
               *((report.get("train_notes") or {}).get("nearest_key") or {}).get("missing", [])]
    if missing:
        parts += ["", "Notes without a nearest key: " + ", ".join(f"`{m}`" for m in missing)
                  + (" (and more; see the notes CSV)" if len(missing) < _num_missing(report) else "") + "."]
    if report.get("figures"):
        parts += ["", "## Figures", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in report["figures"]]
    return "\n".join(parts) + "\n"


def _num_missing(report: Mapping[str, Any]) -> int:
    return int((report.get("nearest_key") or {}).get("num_missing", 0)) + int(
        ((report.get("train_notes") or {}).get("nearest_key") or {}).get("num_missing", 0))


def _fit_section(report: Mapping[str, Any]) -> list[str]:
    """The held-out beside training notes section, or nothing without training notes."""
    train = report.get("train_notes")
    if not train:
        return []
    return ["## Held-out and training notes (fitting beside generalising)", "",
            f"{train['num_notes']} training notes (a stable sample of the {NEAREST_KEY_SPLIT} split) scored "
            f"as the {report['num_notes']} held-out ones:", "", fit_table(report), "",
            listener_table(train["summary"]["overall"], label="training notes"), "",
            "Per family:", "", fit_table(report, by_family=True), ""]


def _timbre_table(rows: Mapping[str, Mapping[str, Any]], first: str) -> list[str]:
    """:data:`TIMBRE_COLUMNS` as Markdown lines (with a blank line after), or none without timbre columns."""
    if not any("median_lts_db" in r for r in rows.values()):
        return []
    return [markdown_table(rows, first, TIMBRE_COLUMNS), ""]


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
                 stem: str = "evaluation", train_notes: Mapping[str, np.ndarray] | None = None) -> dict[str, Path]:
    """Write ``<stem>.md``, ``<stem>.json`` and, given per-note columns, ``<stem>_notes.csv``
    (and ``<stem>_train_notes.csv`` for the training notes' columns).

    Returns:
        ``{"markdown": path, "json": path[, "notes": path][, "train_notes": path]}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / f"{stem}.md", "json": out / f"{stem}.json"}
    paths["markdown"].write_text(format_markdown(report))
    paths["json"].write_text(json.dumps(_jsonable(report), indent=2) + "\n")
    for name, columns in (("notes", notes), ("train_notes", train_notes)):
        if columns is not None:
            paths[name] = _write_csv(columns, out / f"{stem}_{name}.csv")
    return paths


def _write_csv(notes: Mapping[str, np.ndarray], path: Path) -> Path:
    """One row per note, the 1-D columns (embeddings left out)."""
    import csv

    keys = [k for k, v in notes.items() if np.ndim(v) == 1]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(keys)
        for i in range(len(notes[keys[0]])):
            writer.writerow([_jsonable(np.asarray(notes[k])[i]) for k in keys])
    return path


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
    from .data.dataset import make_note_dataset

    split_size = _split_size(dataset, split)
    ds = make_note_dataset(dataset, split)
    fraction = _sample_fraction(max_notes, split_size)
    if fraction is not None:
        ds = ds.map_batches(_subsample, batch_format="numpy", fn_kwargs={"fraction": fraction, "seed": seed})
    if max_notes is not None:
        ds = ds.limit(max_notes)
    return ds, split_size


def _split_size(dataset: str, split: str) -> int | None:
    from .data.dataset import load_manifest

    return load_manifest(dataset).get("splits", {}).get(split, {}).get("accepted")


def _sample_fraction(max_notes: int | None, split_size: int | None) -> float | None:
    """The :func:`keep_note` fraction of :func:`sample_split`, None when it keeps every note."""
    if max_notes is not None and split_size and max_notes < split_size:
        # Over-sample by a margin so the hash-chosen sample rarely falls short of max_notes.
        return min(1.0, 1.2 * max_notes / split_size + 8 / split_size)
    return None


def sample_candidates(dataset: str, split: str, max_notes: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """The metadata of every note :func:`sample_split` may return, read without audio.

    A superset of its sample (the hash keeps a margin over ``max_notes``, then the first
    ``max_notes`` rows stream through), known before any audio is read.

    Returns:
        ``{note_str, instrument_str, pitch, velocity: (K,) arrays}``.
    """
    from .data.dataset import read_split_metadata

    meta = read_split_metadata(dataset, split)
    fraction = _sample_fraction(max_notes, _split_size(dataset, split))
    if fraction is None:
        return meta
    keep = np.array([keep_note(str(s), fraction, seed) for s in meta["note_str"]], dtype=bool)
    return {k: v[keep] for k, v in meta.items()}


# --------------------------------------------------------------------------- the nearest-key baseline

@dataclass
class NearestKeys:
    """The training notes a sampler would stretch to play each target note.

    Attributes:
        plan: ``{target note_str: source note_str}`` for the targets that have a source.
        audio: ``{source note_str: (T,) float32}``, the sources' real audio.
        pitch: ``{source note_str: MIDI pitch}``.
    """

    plan: dict[str, str]
    audio: dict[str, np.ndarray]
    pitch: dict[str, int]


def plan_nearest_keys(targets: Mapping[str, np.ndarray], train: Mapping[str, np.ndarray]) -> list[str | None]:
    """For each target note, the ``note_str`` of the training note a sampler would stretch.

    Args:
        targets, train: metadata columns ``note_str``, ``instrument_str``, ``pitch``, ``velocity``.
    Returns:
        per target, the training note of the same instrument and velocity at the nearest pitch
        other than the target's own (:func:`timbre.nearest_key_plan`), or None when there is none.
    """
    keys = list(zip(np.asarray(train["instrument_str"]).astype(str), np.asarray(train["pitch"]).astype(int),
                    np.asarray(train["velocity"]).astype(int)))
    by_key = dict(zip(keys, np.asarray(train["note_str"]).astype(str)))
    wanted = zip(np.asarray(targets["instrument_str"]).astype(str), np.asarray(targets["pitch"]).astype(int),
                 np.asarray(targets["velocity"]).astype(int))
    return [None if key is None else by_key[key] for key in timbre.nearest_key_plan(list(wanted), keys)]


def load_nearest_keys(dataset: str, targets: Mapping[str, np.ndarray],
                      source_split: str = NEAREST_KEY_SPLIT) -> NearestKeys:
    """Plan the nearest keys of ``targets`` from the training split's metadata, then read those notes.

    Only the metadata columns of ``source_split`` are read whole; the audio read is that of the
    chosen sources alone (:func:`fetch_notes`), 256 kB per source note.

    Args:
        dataset: an ingested dataset.
        targets: the scored notes' metadata (``note_str``, ``instrument_str``, ``pitch``, ``velocity``).
    """
    from .data.dataset import WAV_COLUMN, read_split_metadata

    sources = plan_nearest_keys(targets, read_split_metadata(dataset, source_split))
    plan = {str(t): s for t, s in zip(np.asarray(targets["note_str"]), sources) if s is not None}
    wanted = sorted(set(plan.values()))
    if not wanted:
        return NearestKeys(plan, {}, {})
    fetched = fetch_notes(dataset, source_split, wanted)
    return NearestKeys(plan, dict(zip(wanted, fetched[WAV_COLUMN])),
                       {s: int(p) for s, p in zip(wanted, fetched["pitch"])})


def nearest_key_shifts(keys: NearestKeys, note_strs: Sequence[str],
                       pitches: Sequence[int]) -> tuple[list[str | None], np.ndarray]:
    """Each note's nearest key (None where none) and the shift to its pitch in semitones (NaN where none)."""
    sources = [keys.plan.get(str(s)) for s in note_strs]
    semitones = np.array([np.nan if s is None else int(p) - keys.pitch[s] for s, p in zip(sources, pitches)],
                         dtype=np.float64)
    return sources, semitones


def shift_nearest_keys(keys: NearestKeys, note_strs: Sequence[str], pitches: Sequence[int], length: int,
                       sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """What the nearest-key sampler plays for each note: its source resampled to the note's pitch.

    Args:
        keys: the plan and the sources' audio (:func:`load_nearest_keys`).
        note_strs, pitches: (B,) the notes' names and MIDI pitches.
        length: samples per note (the shifted sources are cut or zero-padded to it).
    Returns:
        ``(audio, semitones)``: (B, length) float32, all zeros where a note has no nearest key,
        and (B,) the shift from the source's pitch, NaN where there is none.
    """
    sources, semitones = nearest_key_shifts(keys, note_strs, pitches)
    audio = np.zeros((len(sources), int(length)), dtype=np.float32)
    for i, source in enumerate(sources):
        if source is not None:
            audio[i] = timbre.shift_pitch(keys.audio[source], semitones[i], length, sample_rate)
    return audio, semitones


def nearest_key_metrics(real: np.ndarray, note_strs: Sequence[str], pitches: Sequence[int], keys: NearestKeys, *,
                        lts_db: np.ndarray | None = None, with_pitch: bool = True,
                        with_embedding: bool = True, sample_rate: int = SAMPLE_RATE,
                        shifted: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Score the nearest-key sampler on some notes: each note's source shifted to its pitch.

    Args:
        real: (B, T) the real notes.
        note_strs, pitches: (B,) their names and MIDI pitches.
        keys: the plan and the sources' audio (:func:`load_nearest_keys`).
        lts_db: (B,) the model's ``lts_db`` on these notes, for ``closer_than_nearest_key``.
        with_pitch, with_embedding: as :func:`note_metrics`.
        shifted: (B, T) the shifted sources when already at hand (:func:`shift_nearest_keys`).
    Returns:
        ``nk_<metric>`` (B,) for :data:`NEAREST_KEY_METRICS` (and ``nk_f0``, ``nk_cents`` with
        pitch; ``nk_emb_generated`` (B, 64) with embeddings), NaN where a note has no nearest
        key; ``nk_note_str`` (the source, "" where none) and ``nk_semitones`` (the shift); with
        ``lts_db``, ``closer_than_nearest_key``: 1.0 where the model's long-term spectrum is
        nearer the real one than the nearest key's, 0.0 where not, NaN without a nearest key.
    """
    p = NEAREST_KEY_PREFIX
    real = np.asarray(real, dtype=np.float32)
    n = len(real)
    sources, semitones = nearest_key_shifts(keys, note_strs, pitches)
    metrics = list(NEAREST_KEY_METRICS) + (["f0", "cents"] if with_pitch else [])
    out: dict[str, np.ndarray] = {f"{p}{k}": np.full(n, np.nan) for k in metrics}
    if with_embedding:
        out[f"{p}emb_generated"] = np.full((n, EMBEDDING_DIM), np.nan)
    out[f"{p}note_str"] = np.array([s or "" for s in sources], dtype=object)
    out[f"{p}semitones"] = semitones
    if shifted is None:
        shifted, _ = shift_nearest_keys(keys, note_strs, pitches, real.shape[1], sample_rate)
    idx = [i for i, s in enumerate(sources) if s is not None]
    if idx:
        scored = note_metrics(np.asarray(shifted, dtype=np.float32)[idx], real[idx], [int(pitches[i]) for i in idx],
                              with_pitch=with_pitch, with_reference_pitch=False, with_embedding=with_embedding,
                              sample_rate=sample_rate)
        for k in metrics + (["emb_generated"] if with_embedding else []):
            out[f"{p}{k}"][idx] = scored[k]
    if lts_db is not None:
        nk = out[f"{p}lts_db"]
        with np.errstate(invalid="ignore"):
            lts = np.asarray(lts_db, dtype=np.float64)
            out["closer_than_nearest_key"] = np.where(np.isfinite(nk) & np.isfinite(lts), (lts < nk).astype(np.float64),
                                                      np.nan)
    return out


PASSTHROUGH_COLUMNS = ("note_str", "instrument_str", "instrument_family_str", "pitch", "velocity")


class NoteScorer:
    """Ray Data UDF (actor pool): generate each note of a batch and score it against the real one.

    Args:
        checkpoint: the checkpoint's bytes, or a Ray ObjectRef to them (one copy in the object
            store for all actors, so workers need no shared file system).
        with_pitch, with_reference_pitch, with_embedding: as :func:`note_metrics`.
        device: torch device of the model.
        nearest_keys: a :class:`NearestKeys` (or a Ray ObjectRef to one): also score the
            nearest-key sampler on each note (:func:`nearest_key_metrics`).
    """

    def __init__(self, checkpoint, with_pitch: bool = True, with_reference_pitch: bool = True,
                 with_embedding: bool = True, device: str = "cpu", nearest_keys=None):
        import ray

        data = ray.get(checkpoint) if isinstance(checkpoint, ray.ObjectRef) else checkpoint
        self.fn, _ = build_note_model(data, device=device)
        self.options = dict(with_pitch=with_pitch, with_reference_pitch=with_reference_pitch,
                            with_embedding=with_embedding)
        self.nearest_keys = ray.get(nearest_keys) if isinstance(nearest_keys, ray.ObjectRef) else nearest_keys

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Args: a numpy batch with ``wav`` (B, T) and the metadata. Returns: per-note metric columns."""
        from .data.dataset import WAV_COLUMN

        real = np.asarray(batch[WAV_COLUMN], dtype=np.float32)
        generated = self.fn(batch["instrument_str"], batch["pitch"], batch["velocity"], real)
        metrics = note_metrics(generated, real, batch["pitch"], **self.options)
        out = {k: np.asarray(batch[k]) for k in PASSTHROUGH_COLUMNS}
        out.update(metrics)
        if self.nearest_keys is not None:
            out.update(nearest_key_metrics(real, batch["note_str"], batch["pitch"], self.nearest_keys,
                                           lts_db=metrics["lts_db"], with_pitch=self.options["with_pitch"],
                                           with_embedding=self.options["with_embedding"]))
        return out


@dataclass
class EvaluationResult:
    """What :func:`evaluate_model` produced.

    Attributes:
        report: the JSON-able report (``summary`` holds overall / by_family / by_octave).
        notes: per-note columns (metrics and metadata), sorted by ``note_str``.
        paths: files written (``markdown``, ``json``, ``notes``, and figures by name).
        run_id: the MLflow run the report was logged to, or None.
        train_notes: the training notes' per-note columns (``report["train_notes"]``), or None.
    """

    report: dict
    notes: dict[str, np.ndarray]
    paths: dict[str, Path] = field(default_factory=dict)
    run_id: str | None = None
    train_notes: dict[str, np.ndarray] | None = None


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
                with_embedding: bool = True, nearest_key: bool = False) -> tuple[dict[str, np.ndarray], int | None]:
    """Score every note of one split (or a stable sample of ``max_notes``) with Ray Data.

    Args:
        checkpoint: checkpoint bytes (SING or Autoencoder).
        dataset: an ingested dataset folder or URI.
        split: ``train``, ``valid`` or ``test``.
        max_notes: at most this many notes, chosen by :func:`keep_note` (None: all).
        batch_size: notes per model call.
        num_workers: actors in the pool, each holding one copy of the model.
        nearest_key: also score the nearest-key sampler (``nk_*`` columns,
            :func:`nearest_key_metrics`): the sample's possible notes are planned from the
            metadata alone (:func:`sample_candidates`), their sources read once on the driver
            and shipped to the actors through the object store.
    Returns:
        ``(notes, split_size)``: per-note columns sorted by note_str, and the split's size
        from the manifest (None if the manifest does not say).
    """
    import ray

    ds, split_size = sample_split(dataset, split, max_notes, seed)
    keys_ref = None
    if nearest_key:
        keys = load_nearest_keys(dataset, sample_candidates(dataset, split, max_notes, seed))
        log.info("nearest keys: %d training notes for %s [%s]", len(keys.audio), dataset, split)
        keys_ref = ray.put(keys)
    ref = ray.put(checkpoint)
    cpus = scorer_cpus(ray.cluster_resources().get("CPU", 0), num_workers)
    if cpus < 1:
        log.info("%d scoring actor(s) of %.2f reserved CPU each, leaving one for reading the notes",
                 num_workers, cpus)
    scored = ds.map_batches(
        NoteScorer, batch_format="numpy", batch_size=batch_size,
        fn_constructor_kwargs=dict(checkpoint=ref, with_pitch=with_pitch,
                                   with_reference_pitch=with_reference_pitch,
                                   with_embedding=with_embedding, device="cuda" if use_gpu else "cpu",
                                   nearest_keys=keys_ref),
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
                     with_embedding: bool = False,
                     nearest_key: bool = False) -> tuple[dict[str, np.ndarray], int | None, dict[str, np.ndarray]]:
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
        nearest_key: also score the nearest-key sampler (``nk_*`` columns, :func:`nearest_key_metrics`).
    Returns:
        ``(notes, split_size, audio)``: per-note columns sorted by note_str (as :func:`score_split`),
        the split's size, and ``{"real": (N, T), "generated": (N, T)}`` in the same order, with
        ``"nearest"`` (N, T) (the nearest key shifted to each note's pitch, zeros where none) when
        ``nearest_key``. UserError when the split holds no notes.
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
    audio = {"real": real, "generated": generated}
    if nearest_key:
        keys = load_nearest_keys(dataset, columns)
        audio["nearest"], _ = shift_nearest_keys(keys, columns["note_str"], columns["pitch"], real.shape[1])
        columns.update(nearest_key_metrics(real, columns["note_str"], columns["pitch"], keys,
                                           lts_db=columns["lts_db"], with_pitch=with_pitch,
                                           with_embedding=with_embedding, shifted=audio["nearest"]))
    return columns, split_size, audio


def fetch_notes(dataset: str, split: str, note_strs: Iterable[str]) -> dict[str, np.ndarray]:
    """The real audio and metadata of a few named notes of a split (for figures, nearest keys).

    Only those notes' audio is decoded and comes here: the name filter goes to the Parquet
    reader (:func:`make_note_dataset`'s ``note_strs``).

    Returns:
        columns of the dataset for those notes, ``wav`` (K, T), in the order of ``note_strs``.
    """
    from .data.dataset import WAV_COLUMN, make_note_dataset

    wanted = [str(s) for s in note_strs]
    rows = {str(r["note_str"]): r for r in make_note_dataset(dataset, split, note_strs=wanted).take_all()}
    missing = [s for s in wanted if s not in rows]
    if missing:
        raise UserError(f"{dataset}: notes {missing[:3]} not found in the {split} split")
    keys = list(rows[wanted[0]].keys())
    out = {k: np.stack([np.asarray(rows[s][k]) for s in wanted]) for k in keys if k != WAV_COLUMN}
    out[WAV_COLUMN] = np.stack([np.asarray(rows[s][WAV_COLUMN], dtype=np.float32) for s in wanted])
    return out


def fetch_held_notes(dataset: str, note_strs: Iterable[str]) -> dict[str, tuple[str, np.ndarray]]:
    """The dataset's own recordings of those of some notes it holds, from whichever split holds each.

    Each split's names are read without audio (:func:`read_split_metadata`); only the notes
    found are decoded (:func:`fetch_notes`).

    Args:
        dataset: an ingested dataset.
        note_strs: NSynth names (``<instrument>-<pitch:03d>-<velocity:03d>``).
    Returns:
        ``{note_str: (split, (T,) float32)}`` for the notes the dataset holds; the others are left out.
    """
    from .data.dataset import WAV_COLUMN, read_split_metadata
    from .nsynth import SPLITS

    wanted = {str(s) for s in note_strs}
    out: dict[str, tuple[str, np.ndarray]] = {}
    for split in SPLITS:
        names = np.asarray(read_split_metadata(dataset, split, ("note_str",))["note_str"]).astype(str)
        held = sorted(wanted.intersection(names) - set(out))
        if held:
            fetched = fetch_notes(dataset, split, held)
            out.update({s: (split, wav) for s, wav in zip(held, fetched[WAV_COLUMN])})
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
                   training_run: str | None = None, nearest_key: bool = True,
                   train_notes: int | None = None) -> EvaluationResult:
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
        nearest_key: also score the nearest-key sampler on every note (``nk_*`` columns).
        train_notes: also score a stable sample of this many training notes, the same way, to
            set fitting beside generalising (0: none; None: :data:`DEFAULT_TRAIN_NOTES`, at
            most as many as the notes scored). Not when ``split`` is the training split.
    Returns:
        an :class:`EvaluationResult` (the training notes' columns in ``train_notes``).
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
    options = dict(seed=seed, batch_size=batch_size, num_workers=num_workers, use_gpu=use_gpu,
                   with_pitch=with_pitch, with_reference_pitch=with_reference_pitch,
                   with_embedding=with_embedding, nearest_key=nearest_key)
    notes, split_size = score_split(checkpoint, dataset, split, max_notes=max_notes, **options)
    num_train = (min(DEFAULT_TRAIN_NOTES, len(notes["note_str"])) if train_notes is None else int(train_notes))
    train: dict[str, np.ndarray] | None = None
    if num_train > 0 and split != NEAREST_KEY_SPLIT:
        log.info("scoring %d training notes beside them", num_train)
        train, train_size = score_split(checkpoint, dataset, NEAREST_KEY_SPLIT, max_notes=num_train, **options)
    report: dict[str, Any] = {
        "model": str(model), "checkpoint": str(path), "model_class": info["model_class"],
        "phase": info["phase"], "dataset": str(dataset), "split": split,
        "num_notes": int(len(notes["note_str"])), "split_size": split_size, "max_notes": max_notes,
        "seed": seed, "summary": summarize(notes),
        "definitions": {"embedding": EMBEDDING_DESCRIPTION, "pitch": PITCH_DESCRIPTION,
                        "mrstft": MRSTFT_DESCRIPTION, "pitch_tolerance_cents": PITCH_TOLERANCE_CENTS,
                        "loudness": LOUDNESS_DESCRIPTION, "silence": SILENCE_DESCRIPTION,
                        "near_silent_db": NEAR_SILENT_DB, "rms_db_floor": RMS_DB_FLOOR,
                        "timbre": timbre.DESCRIPTION, "nearest_key": NEAREST_KEY_DESCRIPTION,
                        "train_notes": TRAIN_NOTES_DESCRIPTION},
    }
    if nearest_key:
        report["nearest_key"] = nearest_key_report(notes)
        _warn_missing_nearest_keys(report["nearest_key"], split)
    if train is not None:
        report["train_notes"] = {"num_notes": int(len(train["note_str"])), "split_size": train_size,
                                 "max_notes": num_train, "summary": summarize(train)}
        if nearest_key:
            report["train_notes"]["nearest_key"] = nearest_key_report(train)
            _warn_missing_nearest_keys(report["train_notes"]["nearest_key"], NEAREST_KEY_SPLIT)
    paths: dict[str, Path] = {}
    if figures:
        training_run = training_run or find_training_run(str(model), tracking_uri, search_paths=log_to_mlflow)
        paths.update(draw_figures(checkpoint, info, notes, dataset, split, out, tracking_uri, training_run))
        report["figures"] = [str(p) for p in paths.values()]
    report["seconds"] = time.monotonic() - started
    report["started_at"] = started_at
    paths.update(write_report(report, out, notes, train_notes=train))
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
    return EvaluationResult(report=report, notes=notes, paths=paths, run_id=run_id, train_notes=train)


def nearest_key_report(notes: Mapping[str, np.ndarray], max_listed: int = 20) -> dict[str, Any]:
    """Which scored notes have no nearest key: ``num_missing`` and up to ``max_listed`` of their names."""
    missing = [str(s) for s, src in zip(notes["note_str"], notes[f"{NEAREST_KEY_PREFIX}note_str"]) if not src]
    return {"source_split": NEAREST_KEY_SPLIT, "num_notes": int(len(notes["note_str"])),
            "num_missing": len(missing), "missing": missing[:max_listed]}


def _warn_missing_nearest_keys(info: Mapping[str, Any], split: str) -> None:
    if info["num_missing"]:
        log.warning("%d of %d %s notes have no nearest key (no other %s pitch of their instrument at their "
                    "velocity), e.g. %s: their nk_ columns are NaN and the nearest key's figures leave them out",
                    info["num_missing"], info["num_notes"], split, info["source_split"],
                    ", ".join(info["missing"][:3]))


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
    """Real | generated | nearest-key spectrograms of a few scored notes (:func:`figures.plot_spectrogram_grid`).

    The notes are chosen among ``notes`` by :func:`figures.choose_grid_notes` (families with most
    notes as rows, pitches low to high as columns); without ``audio`` their real audio is fetched
    from the split and the model's output generated here, on the driver. When the notes were
    scored beside the nearest key (``notes`` has ``nk_note_str``), each gets a third panel: the
    training note a sampler would stretch, resampled to its pitch (from ``audio["nearest"]``,
    else read from the training split).

    Args:
        checkpoint: the model's checkpoint bytes.
        notes: per-note columns of the scored notes (``note_str``, ``instrument_family_str``,
            ``pitch``, ``velocity``; ``nk_note_str`` and ``nk_semitones`` for the nearest key).
        dataset, split: where the real notes are.
        path: the PNG to write.
        audio: ``{"real": (N, T), "generated": (N, T)}`` in the order of ``notes``' rows, and
            ``"nearest"`` (N, T), when already at hand (:func:`score_split_here`).
    Returns:
        the path, or None when there are no notes to draw.
    """
    from . import figures as fig
    from .data.dataset import WAV_COLUMN

    chosen = fig.choose_grid_notes(notes, max_families, max_pitches)
    if not chosen:
        return None
    row = {str(name): i for i, name in enumerate(np.asarray(notes["note_str"]))}
    idx = [row[name] for name in chosen]
    if audio is not None:
        real = {k: np.asarray(notes[k])[idx] for k in ("instrument_family_str", "pitch")}
        real[WAV_COLUMN] = np.asarray(audio["real"])[idx]
        generated = np.asarray(audio["generated"])[idx]
    else:
        real = fetch_notes(dataset, split, chosen)
        fn, _ = build_note_model(checkpoint)
        generated = fn(real["instrument_str"], real["pitch"], real["velocity"], real[WAV_COLUMN])
    nearest = nearest_pitches = None
    if f"{NEAREST_KEY_PREFIX}note_str" in notes:
        pitches = np.asarray(notes["pitch"])[idx].astype(int)
        semitones = np.asarray(notes[f"{NEAREST_KEY_PREFIX}semitones"], dtype=np.float64)[idx]
        nearest_pitches = [None if not np.isfinite(s) else int(p - s) for p, s in zip(pitches, semitones)]
        if audio is not None and "nearest" in audio:
            nearest = np.asarray(audio["nearest"])[idx]
        else:
            targets = {k: np.asarray(notes[k])[idx] for k in ("note_str", "instrument_str", "pitch", "velocity")}
            nearest, _ = shift_nearest_keys(load_nearest_keys(dataset, targets), chosen, pitches,
                                            real[WAV_COLUMN].shape[1])
    # The family is the row's label: the note's name alone fits its panel.
    return fig.plot_spectrogram_grid(
        real[WAV_COLUMN], generated, chosen, path,
        families=[str(f) for f in real["instrument_family_str"]], pitches=[int(p) for p in real["pitch"]],
        nearest=nearest, nearest_pitches=nearest_pitches)


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

    The training notes' overall metrics (``report["train_notes"]``) go in as ``train_<metric>``.

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
                           "model_class": report.get("model_class"), "embedding": EMBEDDING_NAME,
                           "train_notes": (report.get("train_notes") or {}).get("num_notes", 0)})
        groups = [(split, report["summary"]["overall"])]
        if report.get("train_notes"):
            groups.append((NEAREST_KEY_SPLIT, report["train_notes"]["summary"]["overall"]))
        metrics = {f"{name}_{k}": float(v) for name, overall in groups for k, v in overall.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}
        mlflow.log_metrics(metrics)
        for path in paths.values():
            mlflow.log_artifact(str(path), artifact_path="evaluation")
        return run.info.run_id
