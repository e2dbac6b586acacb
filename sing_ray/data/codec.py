"""How a note's samples are stored in the ``audio`` column: raw int16 PCM, or FLAC.

Three choices, named as ``sing-ray data ingest --audio`` names them:

- ``pcm``: raw little-endian int16 PCM (128,000 bytes a note), the Parquet
  column snappy-compressed as every other column. The default, and what every
  dataset written before the choice existed holds.
- ``zstd``: the same raw PCM values, the ``audio`` column compressed by Parquet
  with zstd. Readers see raw PCM: Parquet undoes the compression.
- ``flac``: each value a complete FLAC stream (16-bit, 16 kHz, mono), written
  by soundfile (libsndfile). FLAC is lossless: decoding gives back exactly the
  samples that were encoded. The column is stored without Parquet compression,
  which would only cost time on FLAC's bytes.

``manifest.json``'s ``audio`` says which: ``{"encoding": "pcm_s16le" | "flac",
"compression": "snappy" | "zstd" | "none", ...}``. Both encodings decode to the
same int16 samples (:func:`decode_int16`).
"""
from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import soundfile as sf

from .. import nsynth

PCM = "pcm_s16le"
FLAC = "flac"
ENCODINGS = (PCM, FLAC)

# --audio choice -> (encoding of each value, Parquet compression of the audio column)
AUDIO_CHOICES = {"pcm": (PCM, "snappy"), "zstd": (PCM, "zstd"), "flac": (FLAC, "none")}
DEFAULT_AUDIO = "pcm"
ZSTD_LEVEL = 3          # pyarrow's default; 9 saves about 6 % more bytes for 4x the write time

FLAC_MAGIC = b"fLaC"
PCM_BYTES = nsynth.NUM_FRAMES * 2


def audio_choice(name: str) -> tuple[str, str]:
    """(encoding, column compression) of an ``--audio`` choice; ValueError naming the choices."""
    try:
        return AUDIO_CHOICES[name]
    except KeyError:
        raise ValueError(f"unknown audio choice {name!r}; expected one of "
                         f"{', '.join(AUDIO_CHOICES)}") from None


def encode_flac(samples: np.ndarray) -> bytes:
    """One note's samples as a FLAC stream.

    Args:
        samples: (NUM_FRAMES,) int16.

    Returns:
        the FLAC file's bytes (16-bit, 16 kHz, mono).
    """
    buffer = io.BytesIO()
    sf.write(buffer, samples, nsynth.SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def decode_flac_into(value, out: np.ndarray) -> None:
    """Decode one FLAC value into ``out`` ((NUM_FRAMES,) int16); ValueError if it is not one note."""
    with sf.SoundFile(io.BytesIO(value)) as f:
        if f.channels != 1 or f.frames != nsynth.NUM_FRAMES:
            raise ValueError(f"a FLAC audio value holds {f.channels} channel(s) of {f.frames} frames, "
                             f"expected 1 of {nsynth.NUM_FRAMES}")
        got = f.read(frames=nsynth.NUM_FRAMES, dtype="int16", out=out)
    if len(got) != nsynth.NUM_FRAMES:
        raise ValueError(f"a FLAC audio value decodes to {len(got)} of {nsynth.NUM_FRAMES} frames")


def audio_column(audio: np.ndarray, encoding: str = PCM) -> pa.Array:
    """The ``audio`` column of some notes.

    Args:
        audio: (n, NUM_FRAMES) int16, C-contiguous.
        encoding: :data:`PCM` (the buffer becomes the column without a copy) or :data:`FLAC`.

    Returns:
        a binary array of n values.
    """
    n = len(audio)
    if encoding == FLAC:
        return pa.array([encode_flac(row) for row in audio], type=pa.binary())
    if encoding != PCM:
        raise ValueError(f"unknown audio encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")
    audio = np.ascontiguousarray(audio, dtype="<i2")
    if n * PCM_BYTES >= 2**31:
        # Arrow's binary type has 32-bit offsets: a shard holds at most 16,777 notes.
        raise ValueError(f"{n} notes exceed one Parquet shard's 2 GiB of audio; use fewer rows per shard")
    offsets = np.arange(n + 1, dtype=np.int32) * PCM_BYTES
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(audio)])


def _pcm_view(audio: pa.Array) -> np.ndarray | None:
    """The int16 samples of a PCM column as a view of its buffer, or None if its values are not all one note."""
    n = len(audio)
    offsets = np.frombuffer(audio.buffers()[1], dtype=np.int32)[audio.offset:audio.offset + n + 1]
    if not np.array_equal(np.diff(offsets), np.full(n, PCM_BYTES)):
        return None
    # All values are the same size and adjacent: view the data buffer directly.
    data = np.frombuffer(audio.buffers()[2], dtype="<i2", count=n * nsynth.NUM_FRAMES,
                         offset=int(offsets[0]))
    return data.reshape(n, nsynth.NUM_FRAMES)


def sniff_encoding(audio: pa.Array) -> str:
    """The encoding of a column whose manifest is not at hand: FLAC streams start with ``fLaC``.

    A PCM note is exactly 128,000 bytes and a FLAC stream of one note is not
    (it is smaller, or carries headers beyond raw size); only a value that is
    both would be ambiguous, and that one is tried as FLAC first.
    """
    for value in audio:
        data = value.as_buffer()
        if data is None:
            continue
        head = data[:4].to_pybytes()
        if head != FLAC_MAGIC:
            return PCM
        if data.size != PCM_BYTES:
            return FLAC
        try:
            decode_flac_into(data, np.empty(nsynth.NUM_FRAMES, dtype=np.int16))
            return FLAC
        except (ValueError, sf.LibsndfileError, RuntimeError):
            return PCM
    return PCM


def decode_int16(audio: pa.Array | pa.ChunkedArray, encoding: str | None = None) -> np.ndarray:
    """The ``audio`` column's samples, exactly as they were written.

    Args:
        audio: n binary values, each one note.
        encoding: :data:`PCM` or :data:`FLAC`, from the manifest's ``audio.encoding``
            (None: told from the values, see :func:`sniff_encoding`).

    Returns:
        (n, NUM_FRAMES) int16 (read-only when it is a view of a PCM column's buffer).
    """
    if isinstance(audio, pa.ChunkedArray):
        audio = audio.combine_chunks()
    n = len(audio)
    if n == 0:
        return np.zeros((0, nsynth.NUM_FRAMES), dtype=np.int16)
    if encoding is None:
        encoding = sniff_encoding(audio)
    if encoding == PCM:
        view = _pcm_view(audio)
        if view is None:
            raise ValueError(f"audio values must all be {PCM_BYTES} bytes (int16 x {nsynth.NUM_FRAMES})")
        return view
    if encoding != FLAC:
        raise ValueError(f"unknown audio encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")
    out = np.empty((n, nsynth.NUM_FRAMES), dtype=np.int16)
    for i, value in enumerate(audio):
        data = value.as_buffer()
        if data is None:
            raise ValueError(f"audio value {i} is null")
        decode_flac_into(data, out[i])
    return out


def parquet_compression(compression: str, columns) -> dict[str, str]:
    """Per-column Parquet compression: snappy for the metadata, ``compression`` for ``audio``."""
    return {**{name: "snappy" for name in columns}, "audio": compression}
