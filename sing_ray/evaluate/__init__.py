"""Evaluation that stands in for listening tests: per-note metrics, grouped summaries, reports.

Metrics, per note, of a model's output against the real note (see docs/evaluation.md): Table 1's
``wav_mse`` and ``spectral_l1``, a multi-resolution STFT distance, pitch in cents, loudness, the
Fréchet distance over a fixed embedding, the timbre distances of :mod:`sing_ray.timbre`, each
beside silence's and beside the nearest-key sampler's (``nk_`` columns): the training split's
note of the same instrument and velocity at the nearest other pitch, resampled to the note's
pitch, what a user holding the training notes gets without any model. Summaries are given
overall, per instrument family and per pitch octave.

The package, by layer (each imports only those above it):

- :mod:`.metrics`: the per-note metrics (:func:`note_metrics`), pitch tracking, the embedding.
- :mod:`.nearest_key`: the nearest-key sampler's plan, shift and scores.
- :mod:`.summary`: grouped summaries (:func:`summarize`, :func:`summarize_group`).
- :mod:`.tables`: Markdown tables, the listener's verdict, held-out beside training notes.
- :mod:`.report`: the report's definitions, Markdown, JSON and CSV (:func:`write_report`).
- :mod:`.note_model`: a checkpoint's output per note (:func:`build_note_model`).
- :mod:`.notes`: which notes are scored and their audio (the stable sample, named notes,
  the nearest keys' sources); reading audio goes through Ray Data.
- :mod:`.plots`: the evaluation's figures; :mod:`.mlflow_run`: its MLflow run.
- :mod:`.job`: the Ray job (:func:`evaluate_model`, :func:`score_split`): Ray Data
  ``map_batches`` on an actor pool that holds the model, so audio never travels to the driver;
  only per-note metrics and embeddings come back.

The first five and :mod:`.note_model` import neither Ray nor MLflow: a script scores notes it
holds and writes the same report as ``sing-ray evaluate`` without starting Ray. Importing this
package starts nothing either; every name is re-exported here.
"""
from ..tracking import find_training_run
from .job import (DEFAULT_TRAIN_NOTES, PASSTHROUGH_COLUMNS, EvaluationResult, NoteScorer, evaluate_model,
                  score_split, score_split_here, scorer_cpus)
from .metrics import (EMBEDDING_DIM, EMBEDDING_EPS, EMBEDDING_HOP, EMBEDDING_N_FFT, EMBEDDING_N_MELS, EMBEDDING_NAME,
                      MRSTFT_EPS, MRSTFT_RESOLUTIONS, NEAR_SILENT_DB, PITCH_FRAME_SECONDS, PITCH_HOP_SECONDS,
                      PITCH_MIN_MIDI, PITCH_MIN_VOICED_FRAMES, PITCH_RESOLUTION, PITCH_SEARCH_SEMITONES,
                      PITCH_TOLERANCE_CENTS, PITCH_TRACK_RATE, RMS_DB_FLOOR, TIMBRE_METRICS, audible_in_tune,
                      cents_off, estimate_f0, frechet_distance, frechet_from_stats, gaussian_stats, in_tune,
                      midi_to_hz, multi_resolution_stft_distance, note_embedding, note_metrics, octave_of, rms_dbfs)
from .mlflow_run import log_evaluation
from .nearest_key import (NEAREST_KEY_METRICS, NEAREST_KEY_PREFIX, NEAREST_KEY_SPLIT, NearestKeys,
                          nearest_key_metrics, nearest_key_report, nearest_key_shifts, plan_nearest_keys,
                          shift_nearest_keys)
from .note_model import build_note_model, check_vocabulary
from .notes import fetch_held_notes, fetch_notes, keep_note, load_nearest_keys, sample_candidates, sample_split
from .plots import draw_figures, draw_spectrogram_sheet
from .report import (EMBEDDING_DESCRIPTION, LOUDNESS_DESCRIPTION, MRSTFT_DESCRIPTION, NEAREST_KEY_DESCRIPTION,
                     PITCH_DESCRIPTION, SILENCE_DESCRIPTION, TRAIN_NOTES_DESCRIPTION, definitions, format_markdown,
                     write_report)
from .summary import (SILENCE_RTOL, SUMMARY_METRICS, scores_like_silence, summarize, summarize_group,
                      summarize_nearest_key)
from .tables import (FIT_COLUMNS, LEVEL_COLUMNS, LISTENER_ROWS, SHORT_LISTENER_ROWS, TIMBRE_COLUMNS, fit_rows,
                     fit_table, listener_summary, listener_table, listener_verdict, markdown_table)

__all__ = [
    # metrics
    "EMBEDDING_DIM", "EMBEDDING_EPS", "EMBEDDING_HOP", "EMBEDDING_N_FFT", "EMBEDDING_N_MELS", "EMBEDDING_NAME",
    "MRSTFT_EPS", "MRSTFT_RESOLUTIONS", "NEAR_SILENT_DB", "PITCH_FRAME_SECONDS", "PITCH_HOP_SECONDS",
    "PITCH_MIN_MIDI", "PITCH_MIN_VOICED_FRAMES", "PITCH_RESOLUTION", "PITCH_SEARCH_SEMITONES",
    "PITCH_TOLERANCE_CENTS", "PITCH_TRACK_RATE", "RMS_DB_FLOOR", "TIMBRE_METRICS", "audible_in_tune", "cents_off",
    "estimate_f0", "frechet_distance", "frechet_from_stats", "gaussian_stats", "in_tune", "midi_to_hz",
    "multi_resolution_stft_distance", "note_embedding", "note_metrics", "octave_of", "rms_dbfs",
    # nearest key
    "NEAREST_KEY_METRICS", "NEAREST_KEY_PREFIX", "NEAREST_KEY_SPLIT", "NearestKeys", "nearest_key_metrics",
    "nearest_key_report", "nearest_key_shifts", "plan_nearest_keys", "shift_nearest_keys",
    # summaries, tables, reports
    "SILENCE_RTOL", "SUMMARY_METRICS", "scores_like_silence", "summarize", "summarize_group", "summarize_nearest_key",
    "FIT_COLUMNS", "LEVEL_COLUMNS", "LISTENER_ROWS", "SHORT_LISTENER_ROWS", "TIMBRE_COLUMNS", "fit_rows",
    "fit_table", "listener_summary", "listener_table", "listener_verdict", "markdown_table",
    "EMBEDDING_DESCRIPTION", "LOUDNESS_DESCRIPTION", "MRSTFT_DESCRIPTION", "NEAREST_KEY_DESCRIPTION",
    "PITCH_DESCRIPTION", "SILENCE_DESCRIPTION", "TRAIN_NOTES_DESCRIPTION", "definitions", "format_markdown",
    "write_report",
    # models, notes, the job, figures, MLflow
    "build_note_model", "check_vocabulary", "fetch_held_notes", "fetch_notes", "keep_note", "load_nearest_keys",
    "sample_candidates", "sample_split", "DEFAULT_TRAIN_NOTES", "PASSTHROUGH_COLUMNS", "EvaluationResult",
    "NoteScorer", "evaluate_model", "score_split", "score_split_here", "scorer_cpus", "draw_figures",
    "draw_spectrogram_sheet", "find_training_run", "log_evaluation",
]
