"""What a sampler needs to know about one rendered note: does it sustain, where it loops, how it releases.

NSynth notes (and so SING's) are held for 3 s, released, and cut at 4 s. A sampler
plays a sample for as long as its key is held, so a sustaining note needs a loop
inside its held part, and every note needs a release time for when the key is let
go. All of it is decided from the note itself, never from its family name:

- **Sustain or decay.** The frame-RMS envelope (16 ms frames) over the held part
  after the attack: a note that loses less than :data:`SUSTAIN_DROP_DB` from its
  peak to the end of its held part, and is not silent, sustains (organ, strings,
  brass, reeds, leads); one that falls further decays (piano, guitar, mallets,
  plucked bass) and plays without a loop, stopping on release.
- **f0.** The normalised autocorrelation of the held part, searched for a period
  within :data:`F0_SEARCH_SEMITONES` of the MIDI pitch, then refined to a fraction
  of a sample at the peaks some 6, 25, 125 and 250 ms on (whole numbers of periods); a peak below :data:`F0_MIN_CORRELATION` means no clear pitch (0).
- **Loop.** Start and end are searched in the held part: the start from
  :data:`LOOP_START_S` after the attack, the end in the last
  :data:`LOOP_END_SEARCH_S` before the note-off, as long a loop as fits. Each
  candidate end is scored by the normalised cross-correlation of the waveform
  around it with the waveform around the start; with an f0 only ends a whole
  number of periods after the start (to the nearest sample) are candidates.
- **Crossfade.** Baked into the sample (every format, the SoundFont too, loops it
  without a crossfade opcode): the samples before the loop end are blended toward
  those before the loop start, so playback that jumps from the end back to the
  start continues exactly where the start's own past leads. Its length follows how
  alike the two ends are (:data:`CROSSFADES`): none for ends that already match,
  up to 100 ms for noisy ones (equal-power then; linear for correlated ends), and
  the next longer one while the join still clicks (``loop_join`` above 0 dB).
- **Join.** Reported in dB: the largest second difference across the join against
  the 99th percentile of the held part's own; at or below 0 dB the join is no
  sharper than the note's waveform anywhere, i.e. no click.
- **Release.** The slope of the tail's dB envelope after the note-off (3 s), fitted
  by least squares; the release is the time that slope takes to fall
  :data:`RELEASE_DROP_DB`, clamped to :data:`RELEASE_RANGE_S` (a tail that does not
  fall gets the longest).

The WAV's ``smpl`` chunk carries the loop (and the note's MIDI key) so samplers that
read it, and not our SFZ, see it too; a FLAC note carries it in its comment
(``sing-ray loop START END PITCH``), so that a note read back is never crossfaded twice.
"""
from __future__ import annotations

import io
import math
import struct
from dataclasses import asdict, dataclass

import numpy as np

from .. import nsynth

SAMPLE_RATE = nsynth.SAMPLE_RATE
NOTE_OFF_S = 3.0                  # NSynth holds every note 3 s, then releases it
FRAME = 256                       # envelope frames: 16 ms
SUSTAIN_DROP_DB = 12.0            # at most this far below the peak at the end of the held part: sustains
SILENT_DB = -70.0                 # a held part below this (dBFS) does not sustain anything
F0_SEARCH_SEMITONES = 7.0
F0_MIN_CORRELATION = 0.5
F0_STRETCH = 8192                 # samples of the held part the f0 is measured on (0.5 s)
ATTACK_DB = 3.0
LOOP_START_S = 0.3                # after the attack
LOOP_END_S = NOTE_OFF_S - 0.1     # the loop ends before the note-off's effects
LOOP_END_SEARCH_S = 0.4           # candidate ends: [LOOP_END_S - this, LOOP_END_S]
MIN_LOOP_S = 0.25
# (correlation at least, crossfade seconds): the first that the ends' match reaches is used.
CROSSFADES = ((0.995, 0.0), (0.95, 0.01), (0.8, 0.03), (0.5, 0.06), (-1.0, 0.1))
RELEASE_DROP_DB = 60.0
RELEASE_RANGE_S = (0.05, 1.0)

COLUMNS = ("sustain", "f0", "loop_start", "loop_end", "loop_crossfade", "loop_join", "release")


@dataclass(frozen=True)
class NoteShape:
    """What :func:`analyse` found (the manifest's columns of the same names).

    Attributes:
        sustain: the note holds its level while its key is held.
        f0: its measured fundamental in Hz (0: no clear pitch).
        loop_start, loop_end: the sustain loop in samples, ``loop_end`` inclusive; -1 without one.
        loop_crossfade: seconds of crossfade baked in before ``loop_end`` (0: none needed).
        loop_join: the join's sharpness in dB against the note's own waveform (<= 0: no click).
        release: seconds to fade out after the key is let go.
    """

    sustain: bool
    f0: float
    loop_start: int
    loop_end: int
    loop_crossfade: float
    loop_join: float
    release: float

    def row(self) -> dict:
        return asdict(self)


def envelope_db(x: np.ndarray, frame: int = FRAME) -> np.ndarray:
    """Frame-RMS level in dBFS of consecutive ``frame``-sample frames (floor -120)."""
    n = len(x) // frame
    frames = x[: n * frame].reshape(n, frame).astype(np.float64)
    return 10 * np.log10(np.mean(frames * frames, axis=1) + 1e-12)


def is_sustained(env: np.ndarray) -> bool:
    """Whether the held part keeps within :data:`SUSTAIN_DROP_DB` of its peak to its end."""
    held = env[: int(NOTE_OFF_S * SAMPLE_RATE / FRAME)]
    peak = held.max()
    end = np.median(held[int((LOOP_END_S - 0.25) * SAMPLE_RATE / FRAME): int(LOOP_END_S * SAMPLE_RATE / FRAME)])
    return bool(end > SILENT_DB and peak - end <= SUSTAIN_DROP_DB)


def _autocorrelation(x: np.ndarray) -> np.ndarray:
    n = len(x)
    size = 1 << int(math.ceil(math.log2(2 * n)))
    spec = np.fft.rfft(x - x.mean(), size)
    ac = np.fft.irfft(spec * np.conj(spec), size)[:n]
    # Unbiased: each lag's sum over the samples it overlaps, normalised to the lag-0 energy.
    return ac / np.maximum(ac[0], 1e-20) * n / np.arange(n, 0, -1)


def estimate_f0(held: np.ndarray, pitch: int) -> float:
    """f0 in Hz of a held stretch, searched near the MIDI ``pitch``; 0 without a clear period."""
    expected = SAMPLE_RATE / (440.0 * 2 ** ((pitch - 69) / 12))
    lo = max(2, int(expected * 2 ** (-F0_SEARCH_SEMITONES / 12)))
    hi = min(len(held) // 2, int(math.ceil(expected * 2 ** (F0_SEARCH_SEMITONES / 12))) + 1)
    if hi <= lo + 1:
        return 0.0
    ac = _autocorrelation(held)
    lag = lo + int(np.argmax(ac[lo:hi]))
    if ac[lag] < F0_MIN_CORRELATION:
        return 0.0
    period = lag + _vertex(ac, lag)
    # The period is measured again k periods on (about 6, 25, 125 and 250 ms), where one sample
    # is a smaller fraction of it; each step's window (a third of a period) holds one peak.
    for span in (100, 400, 2000, 4000):
        k = int(span // period)
        if k < 2 or k * period + period >= len(ac) - 1:
            continue
        target = k * period
        near = np.arange(max(1, int(target - period / 3)), int(target + period / 3) + 1)
        peak = int(near[np.argmax(ac[near])])
        period = (peak + _vertex(ac, peak)) / k
    return float(SAMPLE_RATE / period)


def _vertex(y: np.ndarray, i: int) -> float:
    """The offset from ``i`` of the parabola through ``y[i-1:i+2]``'s vertex (0 where it is no maximum)."""
    a, b, c = y[i - 1], y[i], y[i + 1]
    denom = a - 2 * b + c
    return float(0.5 * (a - c) / denom) if denom < 0 else 0.0


def _ncc(template: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation of ``template`` at every offset inside ``region``."""
    m = len(template)
    t = template - template.mean()
    tn = np.sqrt(np.sum(t * t)) + 1e-20
    size = 1 << int(math.ceil(math.log2(len(region) + m)))
    corr = np.fft.irfft(np.fft.rfft(region, size) * np.conj(np.fft.rfft(t, size)), size)[: len(region) - m + 1]
    csum = np.concatenate([[0.0], np.cumsum(region)])
    csum2 = np.concatenate([[0.0], np.cumsum(region * region)])
    sums = csum[m:] - csum[:-m]
    energy = np.maximum(csum2[m:] - csum2[:-m] - sums * sums / m, 0.0)
    return corr / (tn * np.sqrt(energy) + 1e-20)


def join_db(y: np.ndarray, start: int, end: int, own: float) -> float:
    """How sharp the loop's join is: its largest second difference against ``own``, in dB.

    ``own``: the 99th percentile of the held part's absolute second differences.
    """
    played = np.concatenate([y[end - 3: end + 1], y[start: start + 3]])
    at_join = np.abs(np.diff(played, 2)).max()
    return float(20 * math.log10(max(at_join, 1e-12) / (own + 1e-12)))


def bake_crossfade(x: np.ndarray, start: int, end: int, length: int, correlated: bool) -> np.ndarray:
    """``x`` with the ``length`` samples up to ``end`` (inclusive) blended toward those up to ``start - 1``."""
    y = x.copy()
    if length <= 0:
        return y
    w = (np.arange(1, length + 1) / length)
    if not correlated:
        w = np.sin(0.5 * np.pi * w)
        keep = np.cos(0.5 * np.pi * (np.arange(1, length + 1) / length))
    else:
        keep = 1.0 - w
    a = slice(end + 1 - length, end + 1)
    b = slice(start - length, start)
    y[a] = x[a] * keep + x[b] * w
    return y


def find_loop(x: np.ndarray, f0: float, attack_end: int) -> tuple[int, int, float] | None:
    """``(start, end, match)`` of the longest well-matched loop in the held part, or None where none fits."""
    start = attack_end + int(LOOP_START_S * SAMPLE_RATE)
    last = int(LOOP_END_S * SAMPLE_RATE)
    first_end = last - int(LOOP_END_SEARCH_S * SAMPLE_RATE)
    if first_end - start < MIN_LOOP_S * SAMPLE_RATE:
        return None
    period = SAMPLE_RATE / f0 if f0 > 0 else 0.0
    half = int(max(64, min(400, 2 * period)))          # compare about two periods either side of the join
    template = x[start - half: start + half]
    region = x[first_end - half: last + half]
    score = _ncc(template, region)                     # score[i]: the end candidate first_end + i
    if period:
        # Only ends a whole number of periods after the start: per number of periods, the best
        # of the nearest sample and its neighbours.
        n = np.arange(math.ceil((first_end - start) / period), math.floor((last - start) / period) + 1)
        aligned = np.round(start + n * period).astype(int) - first_end
        near = np.clip(aligned[:, None] + np.arange(-1, 2)[None, :], 0, len(score) - 1)
        candidates = near[np.arange(len(near)), np.argmax(score[near], axis=1)]
    else:
        candidates = np.arange(len(score))
    # The longest loop among those matching nearly as well as the best (within 0.01).
    best = score[candidates].max()
    good = candidates[score[candidates] >= best - 0.01]
    end = first_end + int(good.max())
    # x[end] is the last sample played; x[start] follows it, as x[end + 1] would.
    return start, end - 1, float(score[end - first_end])


def release_seconds(env: np.ndarray) -> float:
    """Seconds the tail after the note-off takes to fall :data:`RELEASE_DROP_DB`, clamped."""
    off = int(NOTE_OFF_S * SAMPLE_RATE / FRAME)
    tail = env[off + 2:]
    if len(tail) < 4:
        return RELEASE_RANGE_S[1]
    floor = env.max() - 80
    keep = np.nonzero(tail > floor)[0]
    if len(keep) < 4:
        return RELEASE_RANGE_S[0]                      # gone within a few frames of the note-off
    tail = tail[: keep[-1] + 1]
    t = np.arange(len(tail)) * FRAME / SAMPLE_RATE
    slope = np.polyfit(t, tail, 1)[0]                  # dB per second
    if slope >= -RELEASE_DROP_DB / RELEASE_RANGE_S[1]:
        return RELEASE_RANGE_S[1]
    return float(np.clip(RELEASE_DROP_DB / -slope, *RELEASE_RANGE_S))


def analyse(wav: np.ndarray, pitch: int) -> tuple[np.ndarray, NoteShape]:
    """Find a note's shape and bake its loop's crossfade into it.

    Args:
        wav: (T,) float waveform of one note at 16 kHz (T >= 3 s for a loop).
        pitch: the MIDI pitch it was rendered at.
    Returns:
        ``(samples, shape)``: the waveform to write (the input, crossfaded before the
        loop end where there is a loop) and its :class:`NoteShape`.
    """
    x = np.asarray(wav, dtype=np.float64)
    env = envelope_db(x)
    release = release_seconds(env)
    if len(x) < NOTE_OFF_S * SAMPLE_RATE or not is_sustained(env):
        return np.asarray(wav, dtype=np.float32), NoteShape(False, 0.0, -1, -1, 0.0, 0.0, release)
    held = env[: int(NOTE_OFF_S * SAMPLE_RATE / FRAME)]
    # The attack ends at the first frame within ATTACK_DB of the held part's peak.
    attack_end = int(np.argmax(held >= held.max() - ATTACK_DB)) * FRAME + FRAME
    f0 = estimate_f0(x[attack_end: min(attack_end + F0_STRETCH, int(LOOP_END_S * SAMPLE_RATE))], pitch)
    loop = find_loop(x, f0, attack_end)
    if loop is None:
        return np.asarray(wav, dtype=np.float32), NoteShape(False, f0, -1, -1, 0.0, 0.0, release)
    start, end, match = loop
    own = float(np.percentile(np.abs(np.diff(x[attack_end: int(LOOP_END_S * SAMPLE_RATE)], 2)), 99))
    # The crossfade the ends' match calls for, longer while the join still clicks.
    first = next(i for i, (threshold, _) in enumerate(CROSSFADES) if match >= threshold)
    for _, seconds in CROSSFADES[first:]:
        length = min(int(seconds * SAMPLE_RATE), start, (end - start) // 4)
        y = bake_crossfade(x, start, end, length, correlated=match >= 0.5)
        join = join_db(y, start, end, own)
        if join <= 0:
            break
    shape = NoteShape(True, f0, start, end, length / SAMPLE_RATE, join, release)
    return y.astype(np.float32), shape


# ----------------------------------------------------------------------------------------------
# The WAV smpl chunk


def _chunks(data: bytes):
    """``(id, offset of its payload, size)`` of each chunk of a RIFF/WAVE file."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    pos = 12
    while pos + 8 <= len(data):
        cid, size = struct.unpack_from("<4sI", data, pos)
        yield cid, pos + 8, size
        pos += 8 + size + (size & 1)


def smpl_chunk(pitch: int, loop_start: int, loop_end: int, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A WAV ``smpl`` chunk: the MIDI unity note and, where ``loop_start >= 0``, one forward loop (end inclusive)."""
    loops = [(0, 0, loop_start, loop_end, 0, 0)] if loop_start >= 0 else []
    body = struct.pack("<9I", 0, 0, round(1e9 / sample_rate), int(pitch), 0, 0, 0, len(loops), 0)
    body += b"".join(struct.pack("<6I", *loop) for loop in loops)
    return b"smpl" + struct.pack("<I", len(body)) + body


def add_smpl(wav_bytes: bytes, pitch: int, loop_start: int, loop_end: int) -> bytes:
    """The WAV file with a ``smpl`` chunk appended (any earlier one removed) and the RIFF size updated."""
    parts = [wav_bytes[pos - 8: pos + size + (size & 1)] for cid, pos, size in _chunks(wav_bytes) if cid != b"smpl"]
    body = b"WAVE" + b"".join(parts) + smpl_chunk(pitch, loop_start, loop_end)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def read_smpl(wav_bytes: bytes) -> dict | None:
    """The ``smpl`` chunk of a WAV file: ``{"unity_note", "loops": [(start, end), ...]}``, or None.

    Only the loops the chunk's size holds are read (a count beyond them is not trusted);
    a file that is not RIFF/WAVE has none.
    """
    try:
        for cid, pos, size in _chunks(wav_bytes):
            if cid == b"smpl" and size >= 36 and pos + size <= len(wav_bytes):
                fields = struct.unpack_from("<9I", wav_bytes, pos)
                count = min(fields[7], (size - 36) // 24)
                loops = [struct.unpack_from("<6I", wav_bytes, pos + 36 + 24 * i)[2:4] for i in range(count)]
                return {"unity_note": fields[3], "loops": [tuple(int(v) for v in loop) for loop in loops]}
    except (ValueError, struct.error):
        return None
    return None


FLAC_LOOP = "sing-ray loop"        # a FLAC note's comment: "sing-ray loop START END" (FLAC has no smpl chunk)


def read_flac_loop(flac_bytes: bytes) -> tuple[int, int] | None:
    """The loop a FLAC note written by :func:`encode` carries in its comment: ``(start, end)``, or None."""
    import soundfile as sf

    try:
        with sf.SoundFile(io.BytesIO(flac_bytes)) as f:
            words = (f.comment or "").split()
    except (RuntimeError, sf.LibsndfileError):
        return None
    if len(words) == 5 and " ".join(words[:2]) == FLAC_LOOP and all(w.lstrip("-").isdigit() for w in words[2:4]):
        return int(words[2]), int(words[3])
    return None


def encode(wav: np.ndarray, pitch: int, fmt: str) -> tuple[bytes, np.ndarray, NoteShape]:
    """A note ready for the library: analysed, crossfaded, 16-bit encoded, with a ``smpl`` chunk in WAVs.

    Returns:
        ``(file bytes, int16 samples written, shape)``.
    """
    from ..dsp import float_to_pcm16
    from ..audio import encode_pcm16

    samples, shape = analyse(wav, pitch)
    pcm = float_to_pcm16(samples)
    if fmt == "wav":
        data = add_smpl(encode_pcm16(pcm, fmt), pitch, shape.loop_start, shape.loop_end)
    else:
        data = encode_pcm16(pcm, fmt, comment=f"{FLAC_LOOP} {shape.loop_start} {shape.loop_end} {pitch}")
    return data, pcm, shape
