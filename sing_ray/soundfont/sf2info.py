"""Reading a SoundFont's presets without FluidSynth: every preset's bank, program, name and key range.

A SoundFont 2 file (SoundFont 2.01 specification, a RIFF ``sfbk``) keeps its
articulation data in the ``pdta`` list, the "hydra": ``phdr`` (preset headers),
``pbag``/``pgen`` (preset zones and their generators), ``inst``, ``ibag``/``igen``
(instruments, their zones and generators) and ``shdr`` (sample headers). A
SoundFont 3 file is the same with Ogg-compressed samples, so the same hydra.
Only the ``pdta`` list is read; the sample data (hundreds of MB) is seeked
over. :mod:`sing_ray.library.sf2` writes this layout.

A preset zone names an instrument (generator 41) and may narrow its keys
(``keyRange``, 43); an instrument zone names a sample (53) and its keys. A zone
without its linking generator that comes first is the global zone, whose
generators are the defaults of the others. A preset plays the keys where one of
its zones and one of that instrument's zones overlap: :attr:`Preset.key_range`
is the span from the lowest such key to the highest (0-127 where no zone names
a range).
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

GEN_INSTRUMENT = 41
GEN_KEY_RANGE = 43
GEN_SAMPLE_ID = 53
FULL_RANGE = (0, 127)
PERCUSSION_BANK = 128            # the GM/GS convention: bank 128 holds the drum kits

# Record sizes of the hydra chunks read here (SF2.01 section 7).
_PHDR = struct.Struct("<20sHHHIII")      # name, preset, bank, bag index, library, genre, morphology
_BAG = struct.Struct("<HH")              # generator index, modulator index
_GEN = struct.Struct("<HH")              # operator, amount (two bytes: a range's lo and hi)
_INST = struct.Struct("<20sH")           # name, bag index


@dataclass(frozen=True)
class Preset:
    """One preset of a SoundFont.

    ``key_range`` is (lowest, highest) playable MIDI key, None when no zone of
    the preset reaches a sample; ``samples`` the sample indices it plays.
    """

    bank: int
    program: int
    name: str
    key_range: tuple[int, int] | None
    samples: frozenset[int] = frozenset()

    @property
    def percussion(self) -> bool:
        """True for a drum kit: bank 128, as GM and GS place them."""
        return self.bank == PERCUSSION_BANK


@dataclass(frozen=True)
class SoundFontInfo:
    """A SoundFont's presets (sorted by bank, program), its version and the file read."""

    path: Path
    version: tuple[int, int]
    presets: tuple[Preset, ...]

    def preset(self, bank: int, program: int) -> Preset | None:
        """The preset at (bank, program), or None."""
        return next((p for p in self.presets if (p.bank, p.program) == (bank, program)), None)


def _name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1").strip()


def _records(data: bytes, record: struct.Struct, chunk: str, path: Path) -> list[tuple]:
    if len(data) % record.size:
        raise UserError(f"SoundFont {path} is corrupt: its {chunk} chunk holds {len(data)} bytes, "
                        f"not a whole number of {record.size}-byte records")
    return [record.unpack_from(data, i) for i in range(0, len(data), record.size)]


# Chunk ids a SoundFont holds (SF2.01 sections 5 to 8): the RIFF lists, INFO's and the hydra's.
_KNOWN_IDS = frozenset(b"LIST ifil isng INAM irom iver ICRD IENG IPRD ICOP ICMT ISFT smpl sm24 "
                       b"phdr pbag pmod pgen inst ibag imod igen shdr".split())


def _is_id(raw: bytes) -> bool:
    return raw in _KNOWN_IDS


def _skip_pad(length: int, unpadded: bytes, padded: bytes) -> int:
    """The pad byte after an odd-sized chunk: 1 as RIFF asks, 0 where the writer left it out
    (FluidR3Mono_GM.sf3's sdta list is 23,476,239 bytes with the next chunk right after)."""
    if not length & 1:
        return 0
    return 0 if _is_id(unpadded) and not _is_id(padded) else 1


def _read_chunks(path: Path) -> tuple[dict[str, bytes], tuple[int, int]]:
    """The pdta chunks by id, and the ifil version from INFO; sdta is seeked over."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
            raise UserError(f"SoundFont {path} is not a SoundFont 2 or 3 file (no RIFF 'sfbk' header)")
        end = min(size, struct.unpack("<I", head[4:8])[0] + 8)
        hydra: dict[str, bytes] = {}
        version = (0, 0)
        pos = 12
        while pos + 8 <= end:
            fh.seek(pos)
            cid, length = struct.unpack("<4sI", fh.read(8))
            if pos + 8 + length > end:
                raise UserError(f"SoundFont {path} is corrupt: chunk {cid!r} at byte {pos} runs past "
                                f"the end of the file (truncated?)")
            if cid == b"LIST":
                kind = fh.read(4)
                if kind in (b"pdta", b"INFO"):
                    body = fh.read(length - 4)
                    sub = 0
                    while sub + 8 <= len(body):
                        sid, slen = struct.unpack_from("<4sI", body, sub)
                        data = body[sub + 8:sub + 8 + slen]
                        if kind == b"pdta":
                            hydra[sid.decode("latin-1")] = data
                        elif sid == b"ifil" and slen >= 4:
                            version = struct.unpack_from("<HH", data)
                        nxt = sub + 8 + slen
                        sub = nxt + _skip_pad(slen, body[nxt:nxt + 4], body[nxt + 1:nxt + 5])
            nxt = pos + 8 + length
            fh.seek(nxt)
            ahead = fh.read(5)
            pos = nxt + _skip_pad(length, ahead[:4], ahead[1:5])
    missing = [c for c in ("phdr", "pbag", "pgen", "inst", "ibag", "igen") if c not in hydra]
    if missing:
        raise UserError(f"SoundFont {path} is corrupt: its pdta list lacks {', '.join(missing)}")
    return hydra, version


def _zones(bags: list[tuple], gens: list[tuple], first: int, last: int) -> list[dict[int, int]]:
    """The zones bags[first:last] as {operator: raw amount}; a zone's first keyRange wins."""
    zones = []
    for b in range(first, last):
        if b + 1 >= len(bags):
            break
        zone: dict[int, int] = {}
        for oper, amount in gens[bags[b][0]:bags[b + 1][0]]:
            zone.setdefault(oper, amount)
        zones.append(zone)
    return zones


def _key_range(zone: dict[int, int], default: tuple[int, int]) -> tuple[int, int]:
    if GEN_KEY_RANGE not in zone:
        return default
    amount = zone[GEN_KEY_RANGE]
    return amount & 0xFF, amount >> 8


def _split_global(zones: list[dict[int, int]], link: int) -> tuple[dict[int, int], list[dict[int, int]]]:
    # The first zone is global when it lacks the generator that links it further down.
    if zones and link not in zones[0]:
        return zones[0], [z for z in zones[1:] if link in z]
    return {}, [z for z in zones if link in z]


def read_soundfont(path: str | os.PathLike) -> SoundFontInfo:
    """Every preset of a SoundFont 2 or 3 file, read from its preset headers and zones.

    Args:
        path: the .sf2 or .sf3 file.
    Returns:
        a :class:`SoundFontInfo` whose presets are sorted by (bank, program).
    Raises:
        UserError: the file is missing, not a SoundFont, or its hydra is damaged.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"SoundFont {path} does not exist or is not a file")
    hydra, version = _read_chunks(path)
    phdr = _records(hydra["phdr"], _PHDR, "phdr", path)
    pbag = _records(hydra["pbag"], _BAG, "pbag", path)
    pgen = _records(hydra["pgen"], _GEN, "pgen", path)
    inst = _records(hydra["inst"], _INST, "inst", path)
    ibag = _records(hydra["ibag"], _BAG, "ibag", path)
    igen = _records(hydra["igen"], _GEN, "igen", path)

    # Each instrument as [(key range, sample)], its global zone's range the default.
    instruments = []
    for i in range(len(inst) - 1):                       # the last record is the terminal EOI
        glob, zones = _split_global(_zones(ibag, igen, inst[i][1], inst[i + 1][1]), GEN_SAMPLE_ID)
        default = _key_range(glob, FULL_RANGE)
        instruments.append([(_key_range(z, default), z[GEN_SAMPLE_ID]) for z in zones])

    presets = []
    for p in range(len(phdr) - 1):                       # the last record is the terminal EOP
        name, program, bank, bag = phdr[p][:4]
        glob, zones = _split_global(_zones(pbag, pgen, bag, phdr[p + 1][3]), GEN_INSTRUMENT)
        default = _key_range(glob, FULL_RANGE)
        lo, hi, samples = 128, -1, set()
        for zone in zones:
            plo, phi = _key_range(zone, default)
            index = zone[GEN_INSTRUMENT]
            if index >= len(instruments):
                raise UserError(f"SoundFont {path} is corrupt: preset {bank}:{program} "
                                f"({_name(name)}) names instrument {index} of {len(instruments)}")
            for (ilo, ihi), sample in instruments[index]:
                klo, khi = max(plo, ilo), min(phi, ihi)
                if klo <= khi:
                    lo, hi = min(lo, klo), max(hi, khi)
                    samples.add(sample)
        presets.append(Preset(bank=bank, program=program, name=_name(name),
                              key_range=(lo, hi) if hi >= 0 else None, samples=frozenset(samples)))
    presets.sort(key=lambda q: (q.bank, q.program))
    return SoundFontInfo(path=path, version=tuple(version), presets=tuple(presets))
