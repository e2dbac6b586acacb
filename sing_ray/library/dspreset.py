"""Decent Sampler: ``<instrument>.dspreset`` per instrument, an XML file beside the samples.

The structure is Decent Sampler's documented one (its developers' guide, "the
groups element"): ``<DecentSampler>`` holds one ``<groups>``, here one ``<group>``
per velocity layer, each holding a ``<sample>`` per rendered pitch with ``path``
(relative to the preset), ``rootNote``, ``loNote``/``hiNote``, ``loVel``/``hiVel``.
Velocities 1-127 are mapped as in every format (:mod:`.mapping`), keys 0-127.

The samples carry their velocity's loudness, so ``ampVelTrack="0"``. A sustaining
note sets ``loopEnabled="true"`` with ``loopStart``/``loopEnd`` (frames, the end
inclusive, as Decent Sampler's default of "length minus 1" shows) and no
``loopCrossfade``: the crossfade is baked into the sample. Every sample sets its
measured ``release`` (seconds) on the amplitude envelope (attack 0, sustain 1).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Callable, Sequence

from .mapping import InstrumentMap

NAME = "dspreset"
PER_INSTRUMENT = True               # one file per instrument
MIN_VERSION = "1.0.0"


def files(maps: Sequence[InstrumentMap]) -> dict[str, list[InstrumentMap]]:
    """``<instrument>.dspreset`` per instrument."""
    return {f"{m.name}.dspreset": [m] for m in maps}


def build_dspreset(imap: InstrumentMap) -> str:
    """The XML text of one instrument's Decent Sampler preset."""
    if not imap.zones:
        raise ValueError(f"{imap.name}: no samples to map")
    root = ET.Element("DecentSampler", minVersion=MIN_VERSION)
    comment = f" {imap.name}: rendered by sing-ray (SING, Défossez et al. 2018)"
    if imap.mix:
        comment += f"; timbre mix: {imap.mix}"
    root.append(ET.Comment(comment + " "))
    groups = ET.SubElement(root, "groups", attack="0", decay="0", sustain="1", ampVelTrack="0")
    for lovel, hivel, zones in imap.layers():
        group = ET.SubElement(groups, "group", name=f"velocity {lovel}-{hivel}")
        for z in zones:
            attrs = {"path": z.path, "rootNote": str(z.pitch), "loNote": str(z.lokey), "hiNote": str(z.hikey),
                     "loVel": str(z.lovel), "hiVel": str(z.hivel), "release": f"{z.release:.3f}"}
            if z.looped:
                attrs.update(loopEnabled="true", loopStart=str(z.loop_start), loopEnd=str(z.loop_end))
            else:
                attrs["loopEnabled"] = "false"
            ET.SubElement(group, "sample", attrs)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def build(maps: Sequence[InstrumentMap], read_pcm: Callable | None = None) -> bytes:
    """The preset of the one instrument in ``maps`` (see :func:`files`)."""
    (imap,) = maps
    return build_dspreset(imap).encode()


def parse_dspreset(text: str) -> list[dict[str, str]]:
    """The ``<sample>`` elements of a preset with the attributes they inherit from ``<groups>``/``<group>``.

    Returns:
        one dict of attributes per sample, in file order.
    Raises:
        ValueError when the document is not a Decent Sampler preset with one ``<groups>``.
    """
    root = ET.fromstring(text)
    if root.tag != "DecentSampler":
        raise ValueError(f"root element is <{root.tag}>, not <DecentSampler>")
    groups = root.findall("groups")
    if len(groups) != 1:
        raise ValueError(f"a preset has one <groups>, this one {len(groups)}")
    samples = []
    for group in groups[0].findall("group"):
        for sample in group.findall("sample"):
            samples.append({**groups[0].attrib, **{k: v for k, v in group.attrib.items() if k != "name"},
                            **sample.attrib})
    return samples
