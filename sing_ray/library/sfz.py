"""SFZ: ``<instrument>.sfz`` per instrument, playable in any SFZ sampler (sfizz, Sforzando, ...).

Each velocity layer is a ``<group>`` with ``lovel``/``hivel``; inside it, each
rendered pitch is a ``<region>`` played at its own key (``pitch_keycenter``) and
transposed over the keys around it (``lokey``/``hikey``), as :mod:`.mapping` lays
them out. The samples already carry the loudness of their velocity, so
``amp_veltrack=0`` stops the sampler attenuating them a second time.

A sustaining note loops while its key is held (``loop_mode=loop_sustain`` with
``loop_start``/``loop_end``, the end inclusive; the crossfade is baked into the
sample, so no ``loop_crossfade`` is needed) and plays on from the loop to its own
tail when the key is let go; a decaying note plays once (``loop_mode=no_loop``).
Either fades out after the key is let go in the time its own tail took to fall 60 dB
(:mod:`.notes`): sfizz's release is linear in dB, 60 dB down at 0.76 of
``ampeg_release`` (measured on sfizz 1.2: 0.147, 0.376, 0.76 and 1.53 s for 0.2, 0.5,
1 and 2 s), so ``ampeg_release`` is the release divided by :data:`DB60_FRACTION`.
"""
from __future__ import annotations

import re
from typing import Callable, Sequence

from .mapping import InstrumentMap

NAME = "sfz"
PER_INSTRUMENT = True               # one file per instrument
DB60_FRACTION = 0.76


def files(maps: Sequence[InstrumentMap]) -> dict[str, list[InstrumentMap]]:
    """``<instrument>.sfz`` per instrument."""
    return {f"{m.name}.sfz": [m] for m in maps}


def build_sfz(imap: InstrumentMap) -> str:
    """The text of one instrument's SFZ file.

    Returns:
        SFZ text: a ``<global>``, then per velocity layer a ``<group>`` of ``<region>``s.
    Raises:
        ValueError when the instrument has no samples.
    """
    if not imap.zones:
        raise ValueError(f"{imap.name}: no samples to map")
    lines = [f"// {imap.name}: rendered by sing-ray (SING, Défossez et al. 2018)"]
    if imap.mix:
        lines.append(f"// timbre mix: {imap.mix}")
    lines += ["<global>", "amp_veltrack=0", ""]
    for lovel, hivel, zones in imap.layers():
        lines.append(f"<group> lovel={lovel} hivel={hivel}")
        for z in zones:
            loop = (f"loop_mode=loop_sustain loop_start={z.loop_start} loop_end={z.loop_end}" if z.looped
                    else "loop_mode=no_loop")
            lines.append(f"<region> sample={z.path} pitch_keycenter={z.pitch} lokey={z.lokey} hikey={z.hikey} "
                         f"{loop} ampeg_release={z.release / DB60_FRACTION:.3f}")
        lines.append("")
    return "\n".join(lines)


def build(maps: Sequence[InstrumentMap], read_pcm: Callable | None = None) -> bytes:
    """The SFZ file of the one instrument in ``maps`` (see :func:`files`)."""
    (imap,) = maps
    return build_sfz(imap).encode()


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
