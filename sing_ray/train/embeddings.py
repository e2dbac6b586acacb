"""Phase 2's input: the trained encoder's embedding of every training note, computed once.

The sequence phase fits the LSTM to the encoder's output for 50 epochs (in the
paper); running the encoder on every note in every epoch would cost as much as
the LSTM itself. So the embeddings are computed once, by Ray Data batch
inference with an actor pool (each actor loads the encoder once and keeps it),
and written as Parquet beside the run's checkpoints::

    <run dir>/embeddings/train/*.parquet   instrument, pitch, velocity, note_str, embedding (D, F) float32
    <run dir>/embeddings/train/_SUCCESS    written last: a re-run of the pipeline reuses a finished folder
    <run dir>/embeddings/interpolated/     with train.sequence_interpolated: the pitches each
                                           instrument lacks, between two it has (same columns)

The valid and test splits are not precomputed: scoring them needs the
waveforms anyway (Table 1's metrics compare audio), and the sequence loop
encodes them on the fly for its embedding MSE.
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

SUCCESS = "_SUCCESS"
COLUMNS = ("note_str", "instrument", "pitch", "velocity")


class EncoderEmbedder:
    """Ray Data actor: loads the autoencoder checkpoint once, embeds batches of notes.

    Args:
        checkpoint: path of the phase-1 checkpoint (an :class:`~sing_ray.models.Autoencoder`).
        use_gpu: run on the actor's GPU.
        threads: torch intra-op threads (the CPUs Ray gave the actor).
    """

    def __init__(self, checkpoint: str, use_gpu: bool = False, threads: int = 1):
        from ..checkpoint import load_model

        torch.set_num_threads(max(1, threads))
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.model, _ = load_model(checkpoint, map_location=self.device)

    @torch.inference_mode()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Args: a numpy batch with ``wav`` (B, T). Returns: the symbols and ``embedding`` (B, D, F)."""
        wav = torch.from_numpy(np.ascontiguousarray(batch["wav"], dtype=np.float32)).to(self.device)
        pitch = torch.from_numpy(np.asarray(batch["pitch"], dtype=np.int64)).to(self.device)
        embedding = self.model.encode(wav, pitch).float().cpu().numpy()
        out = {name: batch[name] for name in COLUMNS}
        out["embedding"] = embedding
        return out


def precompute_embeddings(notes, checkpoint: str | Path, out: str | Path, *, num_actors: int = 1,
                          batch_size: int = 16, use_gpu: bool = False, threads: int = 1) -> Path:
    """Embed every note of ``notes`` with the encoder of ``checkpoint`` and write Parquet to ``out``.

    Args:
        notes: a Ray Dataset of notes (``make_note_dataset(..., "train")``).
        checkpoint: the autoencoder checkpoint (phase 1's final model).
        out: the folder to write; reused as is when it holds ``_SUCCESS``.
        num_actors: size of the actor pool, one encoder copy per actor.
        batch_size: notes per encoder call.
        use_gpu: one GPU per actor.
        threads: CPUs (and torch threads) per actor.
    Returns:
        ``out`` as a Path.
    """
    import ray.data

    def write(folder: Path) -> None:
        notes.select_columns([*COLUMNS, "wav"]).map_batches(
            EncoderEmbedder, fn_constructor_kwargs={"checkpoint": str(checkpoint), "use_gpu": use_gpu,
                                                    "threads": threads},
            batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=num_actors),
            num_cpus=threads, num_gpus=1 if use_gpu else 0).write_parquet(str(folder))

    return _write_once(Path(out), write)


def _write_once(out: Path, write) -> Path:
    """``write(folder)`` into a temporary folder beside ``out``, renamed to ``out`` and marked
    ``_SUCCESS`` when done; an ``out`` already marked is reused, an unmarked one (an
    unfinished earlier attempt) replaced."""
    if (out / SUCCESS).exists():
        log.info("embeddings: reusing %s", out)
        return out
    if out.exists():
        shutil.rmtree(out)
    started = time.monotonic()
    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write(tmp)
    tmp.rename(out)
    (out / SUCCESS).write_bytes(b"")
    log.info("embeddings: %s written in %.1f s", out, time.monotonic() - started)
    return out


INTERPOLATIONS = ("linear", "nearest")
# The pitches "nearest" stretches an instrument's edge keys to, at most: NSynth's range.
MIN_PITCH, MAX_PITCH = 21, 108


def interpolate_pitches(group: dict[str, np.ndarray], mode: str = "linear", edges: bool = False) -> dict[str, np.ndarray]:
    """One instrument at one velocity: frames for each pitch it lacks between two it has.

    Each missing pitch ``q`` between trained pitches ``a < q < b`` (no trained pitch between
    them) gets ``(1 - w) * frames(a) + w * frames(b)`` with ``w = (q - a) / (b - a)`` (``mode``
    "linear"), or with ``w`` rounded to 0 or 1, the nearer pitch's frames, the upper one's
    half way ("nearest": what a sampler plays, its nearest key stretched; with the noise in
    pitch bands the frames are then a stretched key's, partials and noise). A sampler also
    stretches its lowest and highest keys beyond them: ``edges`` adds the pitches under the
    lowest trained pitch and over the highest, as far as the instrument's two closest trained
    pitches lie apart (within NSynth's 21 to 108), with those keys' frames (a held-out note at
    the edge of an instrument's range is otherwise a pitch the LSTM never saw it play). With
    harmonic frames, the log magnitudes of the note's partials over time, that is each
    partial's level in dB interpolated in pitch: the frozen decoder plays such frames for the
    held-out notes of the quick start's set at 0.42 x silence's spectral L1, where the LSTM
    fitted to the trained pitches alone gives 0.53 x (docs/quality-diary.md, section 12).

    Args:
        group: the train embeddings of one (instrument, velocity), numpy columns of
            :func:`precompute_embeddings` (a group of Ray Data's ``map_groups``).
        mode: one of :data:`INTERPOLATIONS` (``train.sequence_interpolation``).
        edges: also the pitches beyond the trained ones (``train.sequence_edges``).
    Returns:
        the same columns for the interpolated notes (none when no pitch is missing); their
        ``note_str`` is the NSynth name of the note they stand for. Two notes at one pitch
        (which a dataset does not hold) count as their mean.
    """
    if mode not in INTERPOLATIONS:
        raise ValueError(f"interpolation {mode!r} is not one of {', '.join(INTERPOLATIONS)}")
    pitch = np.asarray(group["pitch"], dtype=np.int64)
    frames = np.asarray(group["embedding"], dtype=np.float32)
    pitches = np.unique(pitch)
    mean = np.stack([frames[pitch == p].mean(axis=0) for p in pitches]) if len(pitches) else frames[:0]
    new_pitch, new_frames = [], []
    for lo in range(len(pitches) - 1):
        a, b = int(pitches[lo]), int(pitches[lo + 1])
        for q in range(a + 1, b):
            w = (q - a) / (b - a)
            if mode == "nearest":
                w = 1.0 if w >= 0.5 else 0.0
            new_pitch.append(q)
            new_frames.append((1.0 - w) * mean[lo] + w * mean[lo + 1])
    if edges and len(pitches) > 1:
        reach = int(np.diff(pitches).min())
        low, high = int(pitches[0]), int(pitches[-1])
        for q in [*range(max(MIN_PITCH, low - reach), low), *range(high + 1, min(MAX_PITCH, high + reach) + 1)]:
            new_pitch.append(q)
            new_frames.append(mean[0] if q < low else mean[-1])
    n = len(new_pitch)
    name = str(group["note_str"][0]).rsplit("-", 2)[0] if len(pitch) else ""
    velocity = np.asarray(group["velocity"])
    return {
        "note_str": np.array([f"{name}-{q:03d}-{int(velocity[0]):03d}" for q in new_pitch], dtype=object),
        "instrument": np.full(n, group["instrument"][0] if len(pitch) else 0, dtype=np.asarray(group["instrument"]).dtype),
        "pitch": np.array(new_pitch, dtype=np.asarray(group["pitch"]).dtype),
        "velocity": np.full(n, velocity[0] if len(pitch) else 0, dtype=velocity.dtype),
        "embedding": np.stack(new_frames).astype(np.float32) if n else np.zeros((0, *frames.shape[1:]), np.float32),
    }


def precompute_interpolated(embeddings: str | Path, out: str | Path, mode: str = "linear",
                            edges: bool = False) -> tuple[Path, int]:
    """Write :func:`interpolate_pitches` (in ``mode``, with ``edges``) of every (instrument, velocity) of ``embeddings`` to ``out``.

    Ray Data groups the train embeddings by instrument and velocity; ``out`` (Parquet, the
    columns of ``embeddings``) is reused as is when it holds ``_SUCCESS``.

    Returns:
        ``out`` as a Path and the number of interpolated notes in it.
    """
    out = _write_once(Path(out), lambda folder: make_embedding_dataset(embeddings).groupby(["instrument", "velocity"])
                      .map_groups(_interpolated_or_nothing, batch_format="numpy", fn_kwargs={"mode": mode, "edges": edges})
                      .write_parquet(str(folder)))
    return out, count_rows(out)


def _interpolated_or_nothing(group: dict[str, np.ndarray], mode: str = "linear",
                            edges: bool = False) -> dict[str, np.ndarray]:
    # An empty batch rather than empty columns: Ray Data cannot make a tensor column of
    # none and would pickle it.
    out = interpolate_pitches(group, mode, edges)
    return out if len(out["pitch"]) else {}


def count_rows(path: str | Path) -> int:
    """Rows in a folder of Parquet files, from their footers."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in sorted(Path(path).glob("*.parquet")))


def make_embedding_dataset(path: str | Path):
    """The precomputed embeddings as a Ray Dataset (columns of :func:`precompute_embeddings`)."""
    import ray.data

    return ray.data.read_parquet(str(path), file_extensions=["parquet"])
