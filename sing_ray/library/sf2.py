"""SoundFont 2 export: one ``library.sf2`` holding every instrument, one preset each.

The file is written by hand to the SoundFont 2.01 specification (a RIFF ``sfbk``):
an ``INFO`` list (version 2.1, ``EMU8000``, the bank's name, ``sing-ray``), an ``sdta``
list whose ``smpl`` chunk holds every sample as 16-bit PCM, each followed by the 46
zero samples the specification asks for, and a ``pdta`` list of the nine "hydra"
chunks (``phdr`` ... ``shdr``), each ending in its terminal record.

Instrument ``i`` of a file's maps is preset ``i`` (of bank 0 up to 128 instruments, see
below) and instrument ``i`` of the file, named after it (:func:`short_names`: at most 20 characters, distinct). Each
:class:`~.mapping.Zone` becomes one instrument zone with, in this order:

- ``keyRange`` (43) and ``velRange`` (44): the zone's keys and velocities;
- ``overridingRootKey`` (58): the pitch the note was rendered at;
- ``sampleModes`` (54): 3 (loop while the key is down, then play on to the end) for
  a sustaining note, 0 (play once) for a decaying one;
- ``releaseVolEnv`` (38): ``round(1200 * log2(release / 0.625))`` timecents, clamped
  to the specification's -12000..8000 (1 ms to 100 s): see "Release" below;
- ``sampleID`` (53), last.

The instrument's global zone (first, no sample) holds modulators with amount 0 that
replace the specification's default velocity-to-attenuation and velocity-to-filter
modulators: the samples already carry the loudness and brightness of their velocity,
as ``amp_veltrack=0`` says in the SFZ export.

Release: FluidSynth (checked on 2.3) ramps its volume envelope linearly in
centibels from the held level down by 96 dB over ``releaseVolEnv`` seconds (the
specification says 100 dB), then ends the voice: 20 dB down in 0.21 of it, 60 dB
in 0.625 (:data:`DB60_FRACTION`) and 90 dB in 0.94 (measured: 0.62 s to -60 dB for
1 s, 1.0 s for 1.6 s, 1.87 s for 3 s). A zone's ``release`` is the time the note's own
tail took to fall 60 dB (:mod:`.notes`), so the envelope gets ``release / 0.625``
and the sampler fades the key 60 dB in the note's own time; a decaying sample's own
decay adds to it. FluidSynth lengthens releases under -7200 timecents to 16 ms.

Sample headers: one per distinct (path, pitch, loop), 16 kHz mono, with the loop in
the ``smpl`` chunk's absolute sample indices, ``endloop`` being the first sample after
the loop (``loop_end + 1``); a note without a loop gets a placeholder loop inside it
(never played: sample mode 0). Zones sharing a path share its PCM. A sample's name is
its number in the file followed by the ``-<pitch>-<velocity>`` of its file name.

Size: the RIFF chunk sizes are 32-bit, so a file must stay under 4 GiB (about
33,500 notes of 64,000 frames; some samplers stop at 2 GiB), and the bags' indices
into the generator list are 16-bit, so a file holds at most 10,922 zones (notes) of
six generators: what FluidSynth (and any reader of the specification) loads. A
library past either limit is split (:func:`files`): one file per NSynth family
(``library-<family>.sf2``, a timbre mix's family being ``mix``), and a family still
past them in parts of whole instruments (``library-<family>-1.sf2``, ``-2``...). A
library within them keeps its one ``library.sf2``. :func:`check_size` refuses only an
instrument too large for a file of its own.

Preset numbers are MIDI programs (0-127): instrument ``i`` is preset ``i % 128`` of
bank ``i // 128``, so a library of more than 128 instruments goes on in bank 1.
"""
from __future__ import annotations

import math
import os
import struct
from typing import Callable, Sequence

import numpy as np

from ..errors import UserError
from .mapping import InstrumentMap, Zone, instrument_labels

NAME = "sf2"
PER_INSTRUMENT = False              # one file for the whole library (split by family past a file's limits)
FILE_NAME = "library.sf2"
NUM_FRAMES = 64000                  # a note's frames (4 s at 16 kHz), what files() sizes the split by
SAMPLE_RATE = 16000

# Zero samples after each sample (SF2.01 section 7.10): room for interpolation.
PAD_SAMPLES = 46
# A RIFF chunk's size is an unsigned 32-bit count of the bytes after its 8-byte header.
MAX_RIFF_SIZE = 2 ** 32 - 1

# Generator operators (SF2.01 section 8.1.2).
GEN_RELEASE_VOL_ENV = 38
GEN_INSTRUMENT = 41
GEN_KEY_RANGE = 43
GEN_VEL_RANGE = 44
GEN_SAMPLE_ID = 53
GEN_SAMPLE_MODES = 54
GEN_OVERRIDING_ROOT_KEY = 58
GEN_COUNT_PER_ZONE = 6
# Bags index the generator list with 16-bit words: the terminal bag's index, six per
# zone, must fit.
MAX_NOTES = 0xFFFF // GEN_COUNT_PER_ZONE
TIMECENTS_RANGE = (-12000, 8000)
DB60_FRACTION = 0.625               # FluidSynth's release envelope is 60 dB down at this share of it
LOOP_CONTINUOUS_THEN_END = 3      # sampleModes: loop while the key is down, then play to the end
NO_LOOP = 0
MONO_SAMPLE = 1                   # sfSampleType

# Modulators (sfModSrcOper, sfModDestOper, modAmount, sfModAmtSrcOper, sfModTransOper)
# replacing the defaults of SF2.01 section 8.4: a modulator with the same sources and
# destination overrides a default one. Velocity to attenuation is 0x0502 -> 48;
# velocity to filter cutoff is 0x0102 -> 8, whose amount source readers of the
# specification disagree on (none, or FluidSynth's velocity switch 0x0C02): both
# are replaced. (FluidSynth 2.3 played velocity 64 and 127 identically without
# them; other players may not.)
VELOCITY_MODULATORS = (
    (0x0502, 48, 0, 0x0000, 0),
    (0x0102, 8, 0, 0x0000, 0),
    (0x0102, 8, 0, 0x0C02, 0),
)

# Bytes of the pdta records one note adds (its sample header, its instrument zone and
# generators), and a bound on everything else (INFO, per-instrument records,
# terminal records): what check_size adds to the sample data.
_PDTA_BYTES_PER_NOTE = 46 + 4 + 4 * GEN_COUNT_PER_ZONE
_OVERHEAD_BYTES = 1 << 20


def files(maps: Sequence[InstrumentMap], max_notes: int | None = None,
          frames: int = NUM_FRAMES) -> dict[str, list[InstrumentMap]]:
    """The library's SoundFonts: ``{file name: its instruments}`` (none without instruments).

    One ``library.sf2`` while every note fits one file; otherwise one file per family,
    ``library-<family>.sf2``, and a family too large for one file in parts of whole
    instruments in their order, ``library-<family>-<k>.sf2`` (k from 1).

    Args:
        maps: the instruments.
        max_notes: notes (zones) per file; default :data:`MAX_NOTES`, lowered further to what
            4 GiB holds at ``frames`` frames a note.
        frames: a note's frames, for the size limit.
    """
    if not maps:
        return {}
    per_note = (frames + PAD_SAMPLES) * 2 + _PDTA_BYTES_PER_NOTE
    limit = min(max_notes or MAX_NOTES, MAX_NOTES, (MAX_RIFF_SIZE - _OVERHEAD_BYTES) // per_note)
    if sum(len(m.zones) for m in maps) <= limit:
        return {FILE_NAME: list(maps)}
    families: dict[str, list[InstrumentMap]] = {}
    for m in maps:
        families.setdefault(instrument_labels(m.name, m.mix)["family"], []).append(m)
    out: dict[str, list[InstrumentMap]] = {}
    for family in sorted(families):
        parts: list[list[InstrumentMap]] = [[]]
        count = 0
        for m in families[family]:
            if parts[-1] and count + len(m.zones) > limit:
                parts.append([])
                count = 0
            parts[-1].append(m)
            count += len(m.zones)
        stem = "library-" + "".join(c if c.isalnum() or c in "_-" else "_" for c in family)
        for k, part in enumerate(parts, 1):
            out[f"{stem}.sf2" if len(parts) == 1 else f"{stem}-{k}.sf2"] = part
    return out


def presets(maps: Sequence[InstrumentMap], max_notes: int | None = None) -> dict[str, tuple[str, int, int]]:
    """Where each instrument plays: ``{instrument: (file name, bank, program)}`` (see :func:`files`)."""
    return {m.name: (name, i // 128, i % 128)
            for name, group in files(maps, max_notes).items() for i, m in enumerate(group)}


_FIX = ("render fewer pitches or velocities per instrument, or leave sf2 out of "
        "--formats (e.g. --formats sfz,dspreset)")


def _size_error(notes: int, nbytes: int) -> UserError:
    return UserError(f"sf2: {notes:,} notes need a {nbytes / 2 ** 30:.2f} GiB ({nbytes:,} bytes) "
                     f"SoundFont, over the format's 4 GiB limit (its RIFF sizes are 32-bit): {_FIX}")


def _count_error(notes: int) -> UserError:
    return UserError(f"sf2: {notes:,} notes are more than one SoundFont holds ({MAX_NOTES:,}: its "
                     f"generator indices are 16-bit): {_FIX}")


def file_size(notes: int, frames: int) -> int:
    """An upper bound on the size in bytes of a SoundFont of ``notes`` samples of ``frames`` frames."""
    return notes * ((frames + PAD_SAMPLES) * 2 + _PDTA_BYTES_PER_NOTE) + _OVERHEAD_BYTES


def check_size(notes: int, frames: int) -> None:
    """Refuse, before rendering, an instrument too large for a SoundFont of its own.

    A library larger than one file is split (:func:`files`); an instrument is never split.

    Args:
        notes: the largest instrument's notes; frames: a note's frames.
    Raises:
        UserError naming the notes, the bytes they need and the limit (4 GiB, or
        :data:`MAX_NOTES` zones).
    """
    nbytes = file_size(notes, frames)
    if nbytes - 8 > MAX_RIFF_SIZE:
        raise _size_error(notes, nbytes)
    if notes > MAX_NOTES:
        raise _count_error(notes)


def release_timecents(seconds: float) -> int:
    """``releaseVolEnv`` that fades a key 60 dB in ``seconds`` (see the module docstring)."""
    if seconds <= 0:
        return TIMECENTS_RANGE[0]
    envelope = seconds / DB60_FRACTION
    return int(min(max(round(1200 * math.log2(envelope)), TIMECENTS_RANGE[0]), TIMECENTS_RANGE[1]))


def _name(text: str) -> bytes:
    # 20 ASCII characters, zero-padded (a 20-character name has no terminator).
    return text.encode("ascii", "replace")[:20]


def short_names(names: Sequence[str]) -> list[str]:
    """Names of at most 20 characters, distinct, for the presets and instruments of ``names``.

    A longer name is cut in the middle, keeping its end (NSynth names end in a number that
    tells instruments of a family apart: ``keyboard_electronic_002`` -> ``keyboard~tronic_002``);
    names still equal after that get their position instead of their start.
    """
    cut = [n if len(n) <= 20 else f"{n[:8]}~{n[-11:]}" for n in names]
    seen: dict[str, int] = {}
    for n in cut:
        seen[n] = seen.get(n, 0) + 1
    return [n if seen[n] == 1 else f"{i}~{n[-(19 - len(str(i))):]}" for i, n in enumerate(cut)]


def _nbytes(parts) -> int:
    return sum(memoryview(p).nbytes for p in parts)


def _chunk(tag: bytes, *parts) -> list:
    # [header, parts..., pad byte]: joined only once, at the end of build().
    size = _nbytes(parts)
    return [tag, struct.pack("<I", size), *parts] + ([b"\0"] if size % 2 else [])


def _list(tag: bytes, *chunks: list) -> list:
    return _chunk(b"LIST", tag, *(p for c in chunks for p in c))


def _info_string(text: str) -> bytes:
    # INFO strings: zero-terminated, an even number of bytes, at most 256.
    data = text.encode("ascii", "replace")[:254] + b"\0"
    return data + b"\0" * (len(data) % 2)


def _zone_generators(zone: Zone, sample_id: int) -> list[bytes]:
    mode = LOOP_CONTINUOUS_THEN_END if zone.looped else NO_LOOP
    return [struct.pack("<HBB", GEN_KEY_RANGE, zone.lokey, zone.hikey),
            struct.pack("<HBB", GEN_VEL_RANGE, zone.lovel, zone.hivel),
            struct.pack("<Hh", GEN_OVERRIDING_ROOT_KEY, zone.pitch),
            struct.pack("<Hh", GEN_SAMPLE_MODES, mode),
            struct.pack("<Hh", GEN_RELEASE_VOL_ENV, release_timecents(zone.release)),
            struct.pack("<HH", GEN_SAMPLE_ID, sample_id)]


def build(maps: Sequence[InstrumentMap], read_pcm: Callable[[str], np.ndarray]) -> bytes:
    """The bytes of ``library.sf2`` for ``maps``.

    Args:
        maps: the instruments, in preset order.
        read_pcm: ``read_pcm(zone.path)``: the sample as 1-D int16 at 16 kHz (read once per path).
    Raises:
        UserError: the file would exceed 4 GiB or :data:`MAX_NOTES` zones.
        ValueError: a sample is not 1-D int16, or a zone's loop lies outside its sample.
    """
    notes = len({z.path for m in maps for z in m.zones})
    if sum(len(m.zones) for m in maps) > MAX_NOTES:
        raise _count_error(sum(len(m.zones) for m in maps))
    pcm_parts: list = []                        # smpl chunk: samples and their zero pads
    pcm_at: dict[str, tuple[int, int]] = {}     # path -> (start, length) in sample points
    points = 0
    headers: list[bytes] = []
    header_of: dict[tuple, int] = {}
    pad = np.zeros(PAD_SAMPLES, dtype="<i2")
    inst, ibag, imod, igen = [], [], [], []
    phdr, pbag, pgen = [], [], []
    names = short_names([m.name for m in maps])
    for number, imap in enumerate(maps):
        phdr.append(struct.pack("<20sHHHIII", _name(names[number]), number % 128, number // 128, number, 0, 0, 0))
        pbag.append(struct.pack("<HH", number, 0))
        pgen.append(struct.pack("<HH", GEN_INSTRUMENT, number))
        inst.append(struct.pack("<20sH", _name(names[number]), len(ibag)))
        ibag.append(struct.pack("<HH", len(igen), len(imod)))       # global zone: modulators only
        imod.extend(struct.pack("<HHhHH", *m) for m in VELOCITY_MODULATORS)
        for zone in imap.zones:
            if zone.path not in pcm_at:
                pcm = np.asarray(read_pcm(zone.path))
                if pcm.ndim != 1 or pcm.dtype != np.int16:
                    raise ValueError(f"sf2: {zone.path}: expected 1-D int16 samples, got "
                                     f"{pcm.dtype} of shape {pcm.shape}")
                pcm_at[zone.path] = (points, len(pcm))
                pcm_parts += [np.ascontiguousarray(pcm, dtype="<i2"), pad]
                points += len(pcm) + PAD_SAMPLES
                if 2 * points > MAX_RIFF_SIZE:                       # projected from those read
                    raise _size_error(notes, file_size(notes, points // len(pcm_at) - PAD_SAMPLES))
            start, length = pcm_at[zone.path]
            key = (zone.path, zone.pitch, zone.loop_start, zone.loop_end) if zone.looped else (zone.path, zone.pitch)
            if key not in header_of:
                if zone.looped:
                    if not 0 <= zone.loop_start < zone.loop_end < length:
                        raise ValueError(f"sf2: {zone.path}: loop {zone.loop_start}-{zone.loop_end} "
                                         f"outside its {length} samples")
                    loop = (start + zone.loop_start, start + zone.loop_end + 1)
                else:
                    loop = (start + min(8, length // 2), start + max(length // 2, length - 8))
                header_of[key] = len(headers)
                # Distinct and short: its number in the file, then the note's -<pitch>-<velocity>.
                name = f"{len(headers)}{os.path.splitext(os.path.basename(zone.path))[0][-8:]}"
                headers.append(struct.pack("<20sIIIIIBbHH", _name(name), start, start + length, *loop,
                                           SAMPLE_RATE, zone.pitch, 0, 0, MONO_SAMPLE))
            ibag.append(struct.pack("<HH", len(igen), len(imod)))
            igen.extend(_zone_generators(zone, header_of[key]))
    n = len(maps)
    phdr.append(struct.pack("<20sHHHIII", b"EOP", 0, 0, n, 0, 0, 0))
    pbag.append(struct.pack("<HH", n, 0))
    pgen.append(struct.pack("<HH", 0, 0))
    inst.append(struct.pack("<20sH", b"EOI", len(ibag)))
    ibag.append(struct.pack("<HH", len(igen), len(imod)))
    imod.append(bytes(10))
    igen.append(bytes(4))
    headers.append(struct.pack("<20s26x", b"EOS"))
    title = "sing-ray: " + ", ".join(m.name for m in maps)
    info = _list(b"INFO", _chunk(b"ifil", struct.pack("<HH", 2, 1)), _chunk(b"isng", _info_string("EMU8000")),
                 _chunk(b"INAM", _info_string(title)), _chunk(b"ISFT", _info_string("sing-ray")))
    pdta = _list(b"pdta", *(_chunk(tag, *records) for tag, records in (
        (b"phdr", phdr), (b"pbag", pbag), (b"pmod", [bytes(10)]), (b"pgen", pgen), (b"inst", inst),
        (b"ibag", ibag), (b"imod", imod), (b"igen", igen), (b"shdr", headers))))
    size = 12 + _nbytes(info) + 20 + 2 * points + _nbytes(pdta)     # RIFF, sdta and smpl headers: 12 + 20
    if size - 8 > MAX_RIFF_SIZE:
        raise _size_error(notes, size)
    return b"".join(_chunk(b"RIFF", b"sfbk", *info, *_list(b"sdta", _chunk(b"smpl", *pcm_parts)), *pdta))
