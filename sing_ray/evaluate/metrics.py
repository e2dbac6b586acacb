"""Per-note metrics of a model's output against the real note: Ray-free (numpy, torch, librosa).

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
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .. import timbre
from ..dsp import stft_magnitude
from ..losses import table1_metrics
from ..nsynth import SAMPLE_RATE

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

# A generated note whose RMS level lies below this is near-silent: 25 dB or more under the
# median real note (the quick start's train notes: median -34.6 dBFS RMS), next to nothing
# at a normal listening level. A level, not a peak: nsynth.SILENT_PEAK (-80 dBFS peak) marks
# a rendered note as silent outright, which a note holding one faint click would escape.
NEAR_SILENT_DB = -60.0
# The level given to digital silence, so that an all-zero note has a finite RMS level (JSON and
# MLflow hold no -inf): below anything 16-bit audio can hold (-98 dBFS).
RMS_DB_FLOOR = -120.0

# The timbre distances of :mod:`sing_ray.timbre`, per note; summaries give their medians.
TIMBRE_METRICS = ("lts_db", "lts_loud_db", "envelope_db")


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
