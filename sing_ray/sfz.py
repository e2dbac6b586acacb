"""SFZ export: one ``<instrument>.sfz`` per rendered instrument, playable in any SFZ sampler.

Each velocity the library holds becomes a ``<group>`` with ``lovel``/``hivel``;
inside it, each rendered pitch becomes a ``<region>`` played at its own key
(``pitch_keycenter``) and transposed over the keys around it (``lokey``/``hikey``):
a key plays the nearest rendered pitch (the lower one on a tie), and the lowest
and highest samples stretch to MIDI keys 0 and 127, so every key of a piano
(21-108) and beyond sounds. Velocity layers split where the rendered
velocities are: 25, 50, 75, 100, 127 give 1-25, 26-50, 51-75, 76-100, 101-127
(a note sounds with the softest layer at least as loud as it is played).

The samples already carry the loudness of their velocity, so ``amp_veltrack=0``
stops the sampler from attenuating them a second time; ``loop_mode=one_shot``
plays each 4 s note to its end, release included, as NSynth recorded it.
"""
from __future__ import annotations

import logging
import re
from collections import defaultdict
from typing import Iterable, Mapping, Sequence

log = logging.getLogger(__name__)

MIDI_KEYS = (0, 127)
VELOCITY_RANGE = (1, 127)


def key_ranges(pitches: Sequence[int]) -> list[tuple[int, int, int]]:
    """``(pitch, lokey, hikey)`` per rendered pitch: a partition of MIDI keys 0-127.

    Args:
        pitches: the rendered pitches (any order, no repeats).
    Returns:
        one triple per pitch, sorted; the boundary between two neighbours is their
        midpoint (the lower pitch takes the middle key of an even gap).
    """
    ordered = sorted(set(int(p) for p in pitches))
    out = []
    for i, p in enumerate(ordered):
        lo = MIDI_KEYS[0] if i == 0 else (ordered[i - 1] + p) // 2 + 1
        hi = MIDI_KEYS[1] if i == len(ordered) - 1 else (p + ordered[i + 1]) // 2
        out.append((p, lo, hi))
    return out


def velocity_ranges(velocities: Sequence[int]) -> list[tuple[int, int, int]]:
    """``(velocity, lovel, hivel)`` per rendered velocity: a partition of MIDI velocities 1-127.

    A layer covers the velocities above the next softer layer up to its own; the
    loudest stretches to 127.
    """
    ordered = sorted(set(int(v) for v in velocities))
    out = []
    for i, v in enumerate(ordered):
        lo = VELOCITY_RANGE[0] if i == 0 else ordered[i - 1] + 1
        hi = VELOCITY_RANGE[1] if i == len(ordered) - 1 else v
        out.append((v, lo, hi))
    return out


def build_sfz(instrument: str, samples: Iterable[tuple[int, int, str]], mix: str = "") -> str:
    """The text of one instrument's SFZ file.

    Args:
        instrument: its name (for the header comment).
        samples: ``(pitch, velocity, path)`` with ``path`` relative to the SFZ file.
        mix: the mix spec, for the header comment of a mixed instrument.
    Returns:
        SFZ text: a ``<global>``, then per velocity layer a ``<group>`` of ``<region>``s.
    """
    by_velocity: dict[int, dict[int, str]] = defaultdict(dict)
    for pitch, velocity, path in samples:
        by_velocity[int(velocity)][int(pitch)] = path
    if not by_velocity:
        raise ValueError(f"{instrument}: no samples to map")
    lines = [f"// {instrument}: rendered by sing-ray (SING, Défossez et al. 2018)"]
    if mix:
        lines.append(f"// timbre mix: {mix}")
    lines += ["<global>", "amp_veltrack=0", "loop_mode=one_shot", ""]
    for velocity, lovel, hivel in velocity_ranges(list(by_velocity)):
        lines.append(f"<group> lovel={lovel} hivel={hivel}")
        paths = by_velocity[velocity]
        for pitch, lokey, hikey in key_ranges(list(paths)):
            lines.append(f"<region> sample={paths[pitch]} pitch_keycenter={pitch} lokey={lokey} hikey={hikey}")
        lines.append("")
    return "\n".join(lines)


# A header, or opcode=value where the value runs to the next opcode, header or line end
# (sample paths may hold spaces).
_TOKEN = re.compile(r"<(?P<header>\w+)>|(?P<key>\w+)=(?P<value>.*?)(?=\s+\w+=|\s*<|\s*$)")


def parse_sfz(text: str) -> list[dict[str, str]]:
    """The regions of an SFZ file with the opcodes they inherit (``<global>``, ``<group>``).

    Enough of the format for what :func:`build_sfz` writes and samplers read:
    headers, ``opcode=value`` pairs, ``//`` comments.

    Returns:
        one dict of opcodes per ``<region>``, in file order.
    """
    regions: list[dict[str, str]] = []
    inherited = {"global": {}, "group": {}}
    current: dict[str, str] = {}
    for raw in text.splitlines():
        for token in _TOKEN.finditer(raw.split("//", 1)[0]):
            header = token["header"]
            if header == "region":
                current = {**inherited["global"], **inherited["group"]}
                regions.append(current)
            elif header in inherited:
                if header == "global":
                    inherited["group"] = {}
                current = inherited[header] = {}
            elif header:
                current = {}          # <control>, <curve>...: nothing a region inherits here
            else:
                current[token["key"]] = token["value"].strip()
    return regions


def write_library_sfz(out, rows: Iterable[Mapping], instruments: Sequence[str], fmt: str,
                      mixes: Mapping[str, str] | None = None) -> list[str]:
    """Write ``<instrument>.sfz`` for each of ``instruments`` from the manifest rows.

    Args:
        out: the library (:class:`sing_ray.render.Output`).
        rows: manifest rows (``instrument``, ``pitch``, ``velocity``, ``path``).
        instruments: the instruments to (re)write an SFZ for.
        fmt: only samples of this format are mapped (a library may hold both).
        mixes: ``{instrument: mix spec}`` for header comments.
    Returns:
        the SFZ paths written, relative to the library.
    """
    wanted = set(instruments)
    samples: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for row in rows:
        if row["instrument"] in wanted and row["path"].endswith("." + fmt):
            samples[row["instrument"]].append((int(row["pitch"]), int(row["velocity"]), row["path"]))
    written = []
    for name in sorted(samples):
        rel = f"{name}.sfz"
        out.write(rel, build_sfz(name, samples[name], (mixes or {}).get(name, "")).encode())
        written.append(rel)
    log.info("wrote %d SFZ file(s)", len(written))
    return written
