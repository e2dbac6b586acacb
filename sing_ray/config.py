"""Configuration: one frozen dataclass tree, presets as YAML, ``--set`` overrides.

The tree keeps experiment fields (``model``, ``train``) apart from plumbing
(``run``: paths, worker counts, addresses). Field names match the constructor
arguments they feed, so ``build_*`` functions pass them through unchanged.

Example::

    cfg = load_config("tiny", overrides=["train.loss=wav", "model.time_dim=0"])
    plain = asdict(cfg)            # what the driver sends to Ray workers
    again = config_from_dict(plain)  # what a worker rebuilds
"""
from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import re
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

# The parts' names and rules, and the options of before they had names: sing_ray.config_parts.
from .config_parts import (FRAMES, HARMONIC_NEEDS, HEAD_SIZES, HEADS, LEARNT_ANALYSIS, LEGACY_MODEL_FLAGS,
                           NOISE_SCALES, REMOVED_TRAIN_OPTIONS, ConfigError, check_parts, model_mapping,
                           parts_from_flags, train_mapping)

log = logging.getLogger("sing_ray.config")

PHASES = ("autoencoder", "sequence", "finetune")
PRESETS = ("paper", "small", "quick", "tiny", "table1", "large")
# The terms a loss expression (``train.loss``) may sum; sing_ray.losses builds each.
LOSS_TERMS = ("spectral", "wav", "mrstft", "loudness")
SPECTRAL_DISTANCES = ("l1", "mse")
LOUDNESS_WEIGHTINGS = ("frames", "level")


@dataclass(frozen=True)
class ModelConfig:
    """SING's parts, chosen by name, and their sizes (defaults: the paper's).

    The presets run: ``paper`` and ``tiny`` learnt frames and the transposed conv (the paper's
    SING; ``tiny`` with the decoder's phase clock); ``table1`` learnt frames, the transposed
    conv and partials; ``quick`` harmonic frames, partials and noise; ``small`` harmonic frames
    and partials at multiples of half the pitch. :func:`check_parts` holds the rules between them.
    """

    dimension: int = 128          # embedding size per frame (62.5 Hz)
    channels: int = 4096          # encoder/decoder width
    kernel_size: int = 1024       # first encoder conv / last decoder transposed conv
    stride: int = 256             # samples per frame: 16000 / 256 = 62.5 Hz
    context_size: int = 9         # decoder's first conv kernel (frames)
    rewrite_layers: int = 2       # 1x1 conv + ReLU blocks in encoder and decoder
    hidden_size: int = 1024       # LSTM units
    num_layers: int = 3           # LSTM layers
    velocity_dim: int = 2
    instrument_dim: int = 16
    pitch_dim: int = 8
    time_dim: int = 4             # 0 removes the time lookup table (the paper's ablation)
    # Partials whose phase at each frame the LSTM is given (cos, sin): 0 is the paper's SING;
    # see SequenceGenerator and docs/quality-diary.md ("Why the model made no notes").
    phase_harmonics: int = 0
    # The MIDI pitch as N cosine and sine pairs of periods 24, 48, ... semitones, beside its
    # table, in the LSTM's input (0: the paper's table alone); SequenceGenerator, docs/quality-diary.md, section 4.
    pitch_features: int = 0
    # Dropout between the LSTM's layers in training (0: the paper, none); needs num_layers > 1.
    lstm_dropout: float = 0.0
    # Partials whose phase at each frame the decoder is given beside the frame (0: the paper):
    # the decoder then turns the partials itself (models/decoder.py, docs/quality-diary.md, section 6).
    decoder_harmonics: int = 0
    # What the frames are (models/encoders.py): "learnt", the paper's, written by a windowed conv
    # of the waveform, or "harmonic", not in the paper: the log magnitudes (over 4) of the note's
    # partials, then its noise levels, measured, plus corrections the layers learn from zero; the
    # decoder's heads play exp(4 x) of each. Harmonic frames need dimension == partials +
    # noise_bands and no transposed conv (docs/quality-diary.md, section 10).
    frames: str = "learnt"
    # What the decoder plays, each frame's windows summed (models/heads.py): "transposed_conv",
    # the paper's learnt 1,024-sample kernel; "partials", not in the paper, the note's first
    # `partials` partials at the MIDI pitch; "noise", not in the paper, filtered noise in
    # `noise_bands` mel bands (models/noise.py). In YAML a list, in --set comma-separated.
    heads: tuple[str, ...] = ("transposed_conv",)
    # The partials head's partials (0 without it; docs/quality-diary.md, section 7).
    partials: int = 0
    # The noise head's bands, spaced evenly in mel from 0 Hz to Nyquist (0 without it): what the
    # note holds beside its partials (noise, vibrato's spread, inharmonic partials, what lies
    # above the last partial); with harmonic frames its levels are the frames' last values.
    noise_bands: int = 0
    # Where the harmonic frames hold the noise's levels: "mel", in the noise bands themselves;
    # "pitch", not in the paper, on as many bands spaced evenly in log frequency from 1/4 to
    # 300 times the note's f0, so that an instrument's noise moves with its pitch as its
    # partials do and as a sampler's stretched key does (models/noise.py). The noise is played
    # in the mel bands either way. Needs harmonic frames; without the noise head it means nothing.
    noise_scale: str = "mel"
    # The partials of decoder and encoder at multiples of f0 / 2^N, N octaves under the MIDI
    # pitch (0: at multiples of f0): 1 adds the half-multiples an organ's 16-foot stop sounds;
    # the partials then reach half as high (models/partials.py, docs/quality-diary.md, section 13).
    sub_octaves: int = 0
    wav_length: int = 64000       # 4 s at 16 kHz
    pad: int = 2304               # padding on each side, as in the public code: 265 frames

    def __post_init__(self) -> None:
        # YAML and JSON give lists, --set a comma-separated string; the heads are kept in the
        # order the decoder builds them (HEADS), so that equal choices compare equal.
        heads = self.heads
        if isinstance(heads, str):
            heads = [h.strip() for h in heads.split(",") if h.strip()]
        order = {name: i for i, name in enumerate(HEADS)}
        object.__setattr__(self, "heads", tuple(sorted(heads, key=lambda h: order.get(h, len(HEADS)))))




def _model_mapping(data: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> dict:
    """:func:`~sing_ray.config_parts.model_mapping` on top of ``base`` (default: the paper's model)."""
    return model_mapping(data, {f.name: f.default for f in fields(ModelConfig)} | dict(base or {}))


def _train_mapping(data: Mapping[str, Any], strict: bool = False) -> dict:
    return train_mapping(data, strict)


@dataclass(frozen=True)
class PhaseConfig:
    """Optimisation of one training phase."""

    epochs: int = 50
    lr: float = 3e-4
    batch_size: int = 64          # global: split across workers, must divide
    # This phase's loss expression (as train.loss); "" uses train.loss. The sequence phase
    # fits embeddings with MSE and takes none.
    loss: str = ""
    # Samples each training example is cut to, at a random offset (0: the whole note).
    # Each of the decoder's windows depends on a few frames around it (its context conv),
    # so a 1 s crop teaches it what the whole note does at a quarter of the cost per step;
    # validation and test always score whole notes.
    crop: int = 0
    # The learning rate at the phase's last epoch, as a fraction of ``lr``: a cosine from
    # ``lr`` down to ``lr * lr_final``, set at the start of each epoch. 1.0 keeps it constant.
    # With a step budget (``steps``) the cosine runs over the steps instead, set every step.
    lr_final: float = 1.0
    # Budgets beside ``epochs`` (0: none): the phase stops at whichever it reaches first, after
    # the step in progress, with a checkpoint and its final model as at an epoch's end.
    # ``steps`` counts batches (global: one per worker group step) from the phase's start,
    # ``max_minutes`` the phase's wall-clock minutes; both carry over when a run is resumed.
    steps: int = 0
    max_minutes: float = 0.0

    def epoch_lr(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (1-based) of this phase."""
        if self.lr_final == 1.0 or self.epochs <= 1:
            return self.lr
        progress = min(max(epoch - 1, 0) / (self.epochs - 1), 1.0)
        return self._cosine(progress)

    def step_lr(self, epoch: int, step: int) -> float:
        """The learning rate of global step ``step`` (1-based) in ``epoch``: over the step budget
        when there is one, else :meth:`epoch_lr`."""
        if self.lr_final == 1.0 or self.steps <= 1:
            return self.epoch_lr(epoch)
        return self._cosine(min(max(step - 1, 0) / (self.steps - 1), 1.0))

    def _cosine(self, progress: float) -> float:
        return self.lr * (self.lr_final + (1.0 - self.lr_final) * 0.5 * (1.0 + math.cos(math.pi * progress)))


@dataclass(frozen=True)
class TrainConfig:
    """What is trained and how."""

    # A weighted sum of terms (spectral, wav, mrstft, loudness), e.g. "spectral" (the
    # paper's) or "mrstft + 0.5*spectral + 0.05*wav"; see parse_loss and docs/training.md.
    loss: str = "spectral"
    spectral_distance: str = "l1"  # spectral term: l1 | mse
    log_offset: float = 1.0       # spectral term: log(log_offset + |STFT|^2); 1.0 is the paper's
    n_fft: int = 1024             # spectral and loudness terms: STFT size / frame length
    # loudness term: "frames" (every frame's log RMS counts the same) or "level" (each
    # frame's counts in proportion to the real note's RMS there: the attack and the body
    # of a decaying note, where its level is heard, outweigh its tail).
    loudness_weighting: str = "frames"
    hop_length: int = 256
    # mrstft term (auraloss.freq.MultiResolutionSTFTLoss): hop fft // 4, window fft.
    mrstft_fft_sizes: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64)
    mrstft_eps: float = 1e-7      # floor of the power |STFT|^2 before the log (auraloss's eps)
    truncated_steps: int = 32     # truncated back-propagation through time (sequence phase)
    # Not in the paper: with harmonic frames, the sequence phase adds this weight times
    # the MSE over the bins where the encoded frame's partial is audible (above -70 dB;
    # FrameLoss). The MSE alone is mostly the floor (partials above Nyquist, silence, tails),
    # and fits a struck note's attack 15 to 20 dB short (docs/quality-diary.md, section 14).
    sequence_audible: float = 0.0
    # Not in the paper: with harmonic frames, each sequence epoch also fits about this
    # many notes per train note drawn afresh from the pitches each instrument lacks between
    # two it has, their frames interpolated in pitch from those two (interpolate_pitches):
    # the LSTM is shown what lies between an instrument's trained pitches (docs/quality-diary.md, section 12).
    sequence_interpolated: float = 0.0
    # How those notes' frames are made from the two trained pitches around them: "linear",
    # weighted by distance; "nearest", not in the paper, the nearer one's (the upper one's half
    # way), as a sampler stretches its nearest key (train/embeddings.py).
    sequence_interpolation: str = "linear"
    # Not in the paper: those notes also stretch an instrument's lowest and highest trained
    # pitches beyond them, as far as its two closest trained pitches lie apart, as a sampler's
    # edge keys reach the keyboard's ends (train/embeddings.py); nothing without
    # sequence_interpolated.
    sequence_edges: bool = False
    seed: int = 1234
    num_examples: int = 4         # generated notes logged per phase
    # Minutes between mid-epoch checkpoints of a phase (0: at epoch ends only, which always
    # checkpoint). A run resumed from one goes on in the same epoch, with the same order of
    # notes, from the batch after it (docs/training.md, "Resume and faults").
    checkpoint_minutes: float = 0.0
    # Splits whose float32 waveforms (or sequence embeddings) fit in this many MiB are read once
    # and held in memory for the phase; larger ones stream from Parquet (sing_ray.train.order).
    materialize_mb: float = 1024.0
    # The most notes of each split that validation and a phase's closing scores (test, train)
    # run over; a larger split is scored on an even subset of this many, the same notes every
    # epoch and phase (0: every note). A corpus of 200,000 notes scored whole would take longer
    # than the steps of a budget of an hour.
    eval_notes: int = 0
    autoencoder: PhaseConfig = field(default_factory=lambda: PhaseConfig(epochs=50))
    sequence: PhaseConfig = field(default_factory=lambda: PhaseConfig(epochs=50))
    finetune: PhaseConfig = field(default_factory=lambda: PhaseConfig(epochs=20))

    def __post_init__(self) -> None:
        # YAML and JSON give lists; a tuple keeps the dataclass hashable and equal to
        # itself after an asdict / config_from_dict round trip.
        if isinstance(self.mrstft_fft_sizes, list):
            object.__setattr__(self, "mrstft_fft_sizes", tuple(self.mrstft_fft_sizes))

    def phase(self, name: str) -> PhaseConfig:
        if name not in PHASES:
            raise ConfigError(f"unknown phase {name!r}; expected one of {', '.join(PHASES)}")
        return getattr(self, name)

    def phase_loss(self, name: str) -> str:
        """The loss expression phase ``name`` trains on: its own ``loss``, else ``train.loss``."""
        return self.phase(name).loss or self.loss


@dataclass(frozen=True)
class RunConfig:
    """Plumbing: where things go and how many workers do them. Not part of the experiment."""

    num_workers: int = 1
    cpus_per_worker: int = 1            # Ray CPUs (and torch threads) of each training worker
    use_gpu: bool = False
    tracking_uri: str | None = None     # None: MLFLOW_TRACKING_URI, else ./mlflow.db
    experiment: str = "sing-ray"
    run_name: str | None = None
    storage_path: str = "runs"          # Ray Train checkpoints and run state
    max_failures: int = 2               # worker restarts Ray Train allows per phase


@dataclass(frozen=True)
class Config:
    preset: str = "paper"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def validate(self) -> "Config":
        """Check values that would otherwise fail deep inside a worker. Returns self."""
        m, t, r = self.model, self.train, self.run
        _validate_loss(t, m)
        for name in ("dimension", "channels", "kernel_size", "stride", "context_size",
                     "hidden_size", "num_layers", "wav_length"):
            if getattr(m, name) <= 0:
                raise ConfigError(f"model.{name} must be positive, got {getattr(m, name)}")
        for name in ("velocity_dim", "instrument_dim", "pitch_dim", "time_dim", "rewrite_layers", "pad",
                     "phase_harmonics", "pitch_features", "decoder_harmonics"):
            if getattr(m, name) < 0:
                raise ConfigError(f"model.{name} must be >= 0, got {getattr(m, name)}")
        if not 0 <= m.lstm_dropout < 1:
            raise ConfigError(f"model.lstm_dropout must be in [0, 1), got {m.lstm_dropout}")
        if m.lstm_dropout and m.num_layers < 2:
            raise ConfigError(f"model.lstm_dropout drops between LSTM layers: it needs model.num_layers >= 2, "
                              f"got {m.num_layers}")
        check_parts(m.frames, m.heads, m.dimension, m.partials, m.noise_bands, m.sub_octaves, m.noise_scale)
        if m.kernel_size % m.stride:
            raise ConfigError(
                f"model.kernel_size ({m.kernel_size}) must be a multiple of model.stride ({m.stride}) "
                "so that overlapping windows tile the waveform")
        if m.context_size % 2 == 0:
            raise ConfigError(f"model.context_size must be odd (centred context), got {m.context_size}")
        padded = m.wav_length + 2 * m.pad
        if padded < m.kernel_size or (padded - m.kernel_size) % m.stride:
            raise ConfigError(
                f"model.wav_length + 2*model.pad = {padded} must be kernel_size ({m.kernel_size}) "
                f"plus a multiple of stride ({m.stride})")
        if m.velocity_dim + m.instrument_dim + m.pitch_dim + m.time_dim == 0:
            raise ConfigError("the sequence generator needs at least one lookup table (all dims are 0)")
        for phase in PHASES:
            p = t.phase(phase)
            if p.epochs < 0:
                raise ConfigError(f"train.{phase}.epochs must be >= 0, got {p.epochs}")
            if p.lr <= 0:
                raise ConfigError(f"train.{phase}.lr must be positive, got {p.lr}")
            if not 0 < p.lr_final <= 1:
                raise ConfigError(f"train.{phase}.lr_final must be in (0, 1] (a fraction of lr), got {p.lr_final}")
            if p.crop and (p.crop < 0 or p.crop % m.stride or not m.kernel_size <= p.crop <= m.wav_length):
                raise ConfigError(
                    f"train.{phase}.crop ({p.crop}) must be 0 (whole notes) or a multiple of model.stride "
                    f"({m.stride}) between model.kernel_size ({m.kernel_size}) and model.wav_length "
                    f"({m.wav_length})")
            if isinstance(p.steps, bool) or not isinstance(p.steps, int) or p.steps < 0:
                raise ConfigError(f"train.{phase}.steps must be a whole number >= 0 (0: no step budget), "
                                  f"got {p.steps!r}")
            if not (isinstance(p.max_minutes, (int, float)) and math.isfinite(p.max_minutes)
                    and p.max_minutes >= 0):
                raise ConfigError(f"train.{phase}.max_minutes must be >= 0 (0: no time budget), got {p.max_minutes!r}")
            if p.batch_size <= 0 or p.batch_size % r.num_workers:
                raise ConfigError(
                    f"train.{phase}.batch_size ({p.batch_size}) must be a positive multiple of "
                    f"run.num_workers ({r.num_workers}): the batch size is global")
        for name in ("checkpoint_minutes", "materialize_mb"):
            value = getattr(t, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and value >= 0):
                raise ConfigError(f"train.{name} must be a number >= 0, got {value!r}")
        if isinstance(t.eval_notes, bool) or not isinstance(t.eval_notes, int) or t.eval_notes < 0:
            raise ConfigError(f"train.eval_notes must be a whole number >= 0 (0: every note), got {t.eval_notes!r}")
        if t.truncated_steps <= 0:
            raise ConfigError(f"train.truncated_steps must be positive, got {t.truncated_steps}")
        if r.num_workers < 1:
            raise ConfigError(f"run.num_workers must be >= 1, got {r.num_workers}")
        if r.cpus_per_worker < 1:
            raise ConfigError(f"run.cpus_per_worker must be >= 1, got {r.cpus_per_worker}")
        return self

    @property
    def num_frames(self) -> int:
        """Frames per note: 265 for the paper's 64,000 samples padded by 2,304 on each side."""
        m = self.model
        return (m.wav_length + 2 * m.pad - m.kernel_size) // m.stride + 1


_WEIGHT = r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_TERM = re.compile(rf"(?:(?P<weight>{_WEIGHT})\s*\*\s*)?(?P<name>[A-Za-z_]\w*)")
_LOSS_EXAMPLE = "e.g. 'spectral' or 'mrstft + 0.5*spectral + 0.05*wav'"


def parse_loss(expression: str, where: str = "train.loss") -> tuple[tuple[str, float], ...]:
    """Parse a loss expression: a sum of terms ``NAME`` or ``WEIGHT*NAME``.

    ``"mrstft + 0.5*spectral"`` -> ``(("mrstft", 1.0), ("spectral", 0.5))``. Names are
    :data:`LOSS_TERMS`; weights are positive decimal numbers (``0.5``, ``2``, ``1e-2``);
    each name appears at most once. The terms keep the expression's order.

    Raises:
        ConfigError: naming the bad term and listing the known ones.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise ConfigError(f"{where}: expected a sum of loss terms ({_LOSS_EXAMPLE}), got {expression!r}")
    if re.search(r"(?<![0-9.][eE])-", expression):
        raise ConfigError(f"{where}: {expression!r}: terms are added with positive weights; "
                          f"'-' is not allowed ({_LOSS_EXAMPLE})")
    known = ", ".join(LOSS_TERMS)
    terms: dict[str, float] = {}
    # Split on '+', but not on the sign of an exponent (1e+2).
    for part in re.split(r"(?<![0-9.][eE])\+", expression):
        text = part.strip()
        match = _TERM.fullmatch(text)
        if not text or match is None:
            what = "an empty term" if not text else f"term {text!r}"
            raise ConfigError(f"{where}: {what} in {expression!r}; each term is NAME or WEIGHT*NAME "
                              f"with NAME one of {known} ({_LOSS_EXAMPLE})")
        name, weight_text = match["name"], match["weight"]
        if name not in LOSS_TERMS:
            close = difflib.get_close_matches(name, LOSS_TERMS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{where}: unknown term {name!r} in {expression!r}{hint}; "
                              f"known terms: {known}")
        weight = 1.0 if weight_text is None else float(weight_text)
        if not (math.isfinite(weight) and weight > 0):
            raise ConfigError(f"{where}: the weight of {name!r} in {expression!r} must be a positive "
                              f"number, got {weight_text}")
        if name in terms:
            raise ConfigError(f"{where}: term {name!r} appears twice in {expression!r}; "
                              "give it once, with the summed weight")
        terms[name] = weight
    return tuple(terms.items())


def _validate_loss(t: "TrainConfig", m: "ModelConfig") -> None:
    terms = dict(parse_loss(t.loss))
    for phase in ("autoencoder", "finetune"):
        if t.phase(phase).loss:
            terms.update(parse_loss(t.phase(phase).loss, f"train.{phase}.loss"))
    if t.sequence.loss:
        raise ConfigError("train.sequence.loss: the sequence phase fits the encoder's embeddings with MSE; "
                          "its loss cannot be set (train.sequence_audible adds a term)")
    harmonic = m.frames == "harmonic"
    if not t.sequence_audible >= 0:
        raise ConfigError(f"train.sequence_audible must be >= 0, got {t.sequence_audible}")
    if t.sequence_audible and not harmonic:
        raise ConfigError(f"train.sequence_audible needs {HARMONIC_NEEDS}: only then do the frames "
                          "say which partials sound")
    if not t.sequence_interpolated >= 0:
        raise ConfigError(f"train.sequence_interpolated must be >= 0, got {t.sequence_interpolated}")
    if t.sequence_interpolation not in ("linear", "nearest"):
        raise ConfigError(f"train.sequence_interpolation: {t.sequence_interpolation!r} is not one of linear, nearest")
    if t.sequence_interpolated and not harmonic:
        raise ConfigError(f"train.sequence_interpolated needs {HARMONIC_NEEDS}: only frames that are "
                          "the partials' log magnitudes can be interpolated between pitches")
    if t.spectral_distance not in SPECTRAL_DISTANCES:
        raise ConfigError(
            f"train.spectral_distance: {t.spectral_distance!r} is not one of "
            f"{', '.join(SPECTRAL_DISTANCES)}")
    if t.loudness_weighting not in LOUDNESS_WEIGHTINGS:
        raise ConfigError(
            f"train.loudness_weighting: {t.loudness_weighting!r} is not one of "
            f"{', '.join(LOUDNESS_WEIGHTINGS)}")
    for name in ("n_fft", "hop_length"):
        value = getattr(t, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"train.{name} must be a positive integer, got {value!r}")
    for name in ("log_offset", "mrstft_eps"):
        value = getattr(t, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value > 0):
            raise ConfigError(f"train.{name} must be a positive number, got {value!r}")
    sizes = t.mrstft_fft_sizes
    if not isinstance(sizes, tuple) or not sizes or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 4 for n in sizes):
        raise ConfigError(f"train.mrstft_fft_sizes must be a non-empty list of FFT sizes >= 4 "
                          f"(e.g. 2048,1024,512), got {sizes!r}")
    if len(set(sizes)) != len(sizes):
        raise ConfigError(f"train.mrstft_fft_sizes: {sizes!r} lists a size twice")
    if "mrstft" in terms and max(sizes) > m.wav_length:
        raise ConfigError(f"train.mrstft_fft_sizes: {max(sizes)} is longer than a note "
                          f"(model.wav_length {m.wav_length})")


def _from_mapping(cls, data: Mapping[str, Any], where: str):
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    if cls is ModelConfig:
        data = _model_mapping(data)
    elif cls is TrainConfig:
        data = _train_mapping(data)
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"unknown config key {where + key!r}{hint}")
        default = getattr(cls(), key) if key in known else None
        if is_dataclass(default):
            kwargs[key] = _from_mapping(type(default), value, f"{where}{key}.")
        elif isinstance(default, float) and isinstance(value, str):
            # PyYAML reads 1e-7 (no dot) as a string.
            try:
                kwargs[key] = float(value)
            except ValueError:
                raise ConfigError(f"{where}{key}: expected float, got {value!r}") from None
        else:
            kwargs[key] = value
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """Rebuild a Config from ``asdict(cfg)`` (what workers and checkpoints receive)."""
    return _from_mapping(Config, data, "").validate()


def _preset_dict(name: str) -> dict:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    text = resources.files("sing_ray.presets").joinpath(f"{name}.yaml").read_text()
    return yaml.safe_load(text) or {}


def _parse_value(text: str, current: Any, key: str) -> Any:
    if isinstance(current, tuple):
        # "1024,512,256" (brackets allowed): items of the default's element type.
        kind = type(current[0]) if current else str
        items = [p.strip() for p in text.strip().strip("[]()").split(",") if p.strip()]
        try:
            return tuple(kind(p) for p in items)
        except ValueError:
            raise ConfigError(f"{key}: expected comma-separated {kind.__name__}s such as "
                              f"{','.join(map(str, current))}, got {text!r}") from None
    if isinstance(current, bool):
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected a boolean, got {text!r}")
    if current is None:
        return None if text.lower() in ("none", "null", "") else text
    try:
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
    except ValueError:
        raise ConfigError(f"{key}: expected {type(current).__name__}, got {text!r}") from None
    return text


def apply_overrides(cfg: Config, overrides: Sequence[str]) -> Config:
    """Apply ``section.key=value`` strings (the CLI's ``--set``).

    The model's flags of before its parts had names keep their meaning (:func:`_model_mapping`):
    ``model.conv_synthesis``, ``model.harmonic_frames``, ``model.analysis_partials``, and a
    head's size (``model.partials``, ``model.noise_bands``) adds or removes that head.
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        dotted, text = item.split("=", 1)
        parts = dotted.strip().split(".")
        if len(parts) == 2 and parts[0] == "model" and (parts[1] in LEGACY_MODEL_FLAGS or parts[1] in HEAD_SIZES):
            current = LEGACY_MODEL_FLAGS.get(parts[1], 0)
            value = _parse_value(text.strip(), current, dotted.strip())
            cfg = replace(cfg, model=replace(cfg.model, **_model_mapping({parts[1]: value}, asdict(cfg.model))))
            continue
        if len(parts) == 2 and parts[0] == "train" and parts[1] in REMOVED_TRAIN_OPTIONS:
            _train_mapping({parts[1]: _parse_value(text.strip(), REMOVED_TRAIN_OPTIONS[parts[1]], dotted.strip())},
                           strict=True)
            continue
        nodes = [cfg]
        for part in parts[:-1]:
            node = nodes[-1]
            if not is_dataclass(node) or part not in {f.name for f in fields(node)}:
                raise ConfigError(f"unknown config key {dotted!r}")
            nodes.append(getattr(node, part))
        leaf = parts[-1]
        node = nodes[-1]
        names = {f.name for f in fields(node)} if is_dataclass(node) else set()
        if leaf not in names or is_dataclass(getattr(node, leaf)):
            close = difflib.get_close_matches(leaf, names, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"unknown config key {dotted!r}{hint}")
        value = _parse_value(text.strip(), getattr(node, leaf), dotted)
        new = replace(node, **{leaf: value})
        for parent, part in zip(reversed(nodes[:-1]), reversed(parts[:-1])):
            new = replace(parent, **{part: new})
        cfg = new
    return cfg


def load_config(preset: str = "paper", path: str | Path | None = None,
                overrides: Sequence[str] = ()) -> Config:
    """Resolve a config: preset YAML, then an optional YAML file, then ``--set`` overrides."""
    cfg = _from_mapping(Config, {**_preset_dict(preset), "preset": preset}, "")
    if path is not None:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if isinstance(data, Mapping) and isinstance(data.get("model"), Mapping):
            data = {**data, "model": _model_mapping(data["model"], asdict(cfg.model))}
        if isinstance(data, Mapping) and isinstance(data.get("train"), Mapping):
            data = {**data, "train": _train_mapping(data["train"])}
        merged = _merge(asdict(cfg), data, "")
        cfg = _from_mapping(Config, merged, "")
    return apply_overrides(cfg, overrides).validate()


def _merge(base: dict, extra: Mapping, where: str) -> dict:
    if not isinstance(extra, Mapping):
        raise ConfigError(f"{where or 'config file'}: expected a mapping")
    out = dict(base)
    for key, value in extra.items():
        if key not in base:
            raise ConfigError(f"unknown config key {where + key!r}")
        if isinstance(base[key], dict):
            out[key] = _merge(base[key], value, f"{where}{key}.")
        else:
            out[key] = value
    return out


def flatten(cfg: Config | Mapping) -> dict[str, Any]:
    """``{"model.channels": 4096, ...}``: the form MLflow params take."""
    data = asdict(cfg) if is_dataclass(cfg) else dict(cfg)
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(f"{prefix}{k}.", v)
        else:
            out[prefix[:-1]] = node

    walk("", data)
    return out


__all__ = [
    "PHASES", "PRESETS", "FRAMES", "HEADS", "NOISE_SCALES", "LOSS_TERMS", "LOUDNESS_WEIGHTINGS", "ConfigError", "ModelConfig",
    "PhaseConfig", "TrainConfig", "RunConfig", "check_parts", "parts_from_flags", "parse_loss", "Config",
    "config_from_dict", "load_config", "apply_overrides", "flatten", "asdict", "dataclasses",
    # re-exported from sing_ray.config_parts
    "HARMONIC_NEEDS", "HEAD_SIZES", "LEARNT_ANALYSIS", "LEGACY_MODEL_FLAGS", "REMOVED_TRAIN_OPTIONS",
    "model_mapping", "train_mapping",
]
