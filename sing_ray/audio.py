"""Note files: 16-bit WAV or FLAC bytes of a note at 16 kHz, and the level statistics a manifest keeps.

A leaf of the package (numpy, soundfile, :mod:`sing_ray.nsynth` and :mod:`sing_ray.dsp`'s
int16 conversion): the render job (:mod:`sing_ray.render`), the sample library's writers
(:mod:`sing_ray.library`), Serve and the benches encode and measure notes here, so that a
note's bytes and statistics are the same whoever writes them.
"""
from __future__ import annotations

import hashlib
import io

import numpy as np

from . import nsynth

# File format -> (soundfile's format name, media type).
FORMATS = {"wav": ("WAV", "audio/wav"), "flac": ("FLAC", "audio/flac")}


def encode_pcm16(pcm: np.ndarray, fmt: str, comment: str = "") -> bytes:
    """The bytes of a 16-bit WAV or FLAC file of ``pcm`` at 16 kHz.

    Args:
        pcm: (T,) int16 samples.
        fmt: ``wav`` or ``flac``.
        comment: the file's comment tag, if given.
    """
    import soundfile as sf

    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", nsynth.SAMPLE_RATE, 1, format=FORMATS[fmt][0], subtype="PCM_16") as f:
        if comment:
            f.comment = comment
        f.write(pcm)
    return buffer.getvalue()


def read_pcm16(data: bytes) -> np.ndarray:
    """The (T,) int16 samples of a WAV or FLAC file's bytes."""
    import soundfile as sf

    pcm, _ = sf.read(io.BytesIO(data), dtype="int16", always_2d=False)
    return np.asarray(pcm)


def note_stats(pcm: np.ndarray, data: bytes) -> dict:
    """The manifest's statistics of a note file.

    Args:
        pcm: (T,) int16 samples the file holds.
        data: the file's bytes.
    Returns:
        ``seconds``, ``peak`` and ``rms`` (of the samples as floats in [-1, 1]) and the
        ``sha256`` of ``data``.
    """
    from .dsp import INT16_SCALE

    x = pcm.astype(np.float32) / INT16_SCALE
    return {
        "seconds": float(len(pcm) / nsynth.SAMPLE_RATE),
        "peak": float(np.abs(x).max()) if len(x) else 0.0,
        "rms": float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0,
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def stats_of_file(data: bytes) -> dict:
    """:func:`note_stats` of a note file already written (read back from its bytes)."""
    return note_stats(read_pcm16(data), data)


def encode_note(wav: np.ndarray, fmt: str) -> tuple[bytes, dict]:
    """16-bit WAV or FLAC bytes of one note, with its level statistics.

    Args:
        wav: (T,) float waveform in [-1, 1] (clipped beyond).
        fmt: ``wav`` or ``flac``.
    Returns:
        ``(data, stats)``; stats as :func:`note_stats`, of what was written (after 16-bit
        quantisation).
    """
    from .dsp import float_to_pcm16

    pcm = float_to_pcm16(wav)
    data = encode_pcm16(pcm, fmt)
    return data, note_stats(pcm, data)
