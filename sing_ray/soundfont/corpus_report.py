"""The record and the tables of a corpus: ``corpus.json``, and the counts beside NSynth's.

``<out>/corpus.json`` holds the settings, each SoundFont's counts, every
instrument (its SoundFont file, bank, program, preset name, key range, family,
source and notes), every preset left out with its reason (a duplicate with the
instrument it duplicates and the distance), and the build's counts.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from .. import nsynth
from .catalog import NSYNTH_FAMILY_NOTES, NSYNTH_INSTRUMENTS, NSYNTH_NOTES, REASONS, Candidate
from .fingerprint import REFERENCE_PITCHES, REFERENCE_VELOCITY
from .fluid import HELD_FRAMES, RELEASE_FRAMES, SAMPLE_RATE

# The plans and builds below are sing_ray.soundfont.corpus's CorpusPlan and CorpusBuild
# (named as strings: this module lies below that one).

CORPUS_JSON = "corpus.json"
DROP_REASONS = {
    **REASONS,
    "duplicate": "sounds like an earlier instrument: its reference notes lie within the tolerance",
    "silent": "its reference notes are all silent (e.g. an 'Expr.' preset whose level follows a controller at 0)",
}


def corpus_record(c: Candidate) -> dict:
    """A preset's entry: where it comes from, its keys and labels; ``identity`` says which preset it is."""
    return {"sf2": str(c.sf2), "bank": c.bank, "program": c.program, "preset": c.preset,
            "key_range": list(c.key_range), "family": c.family, "source": c.source,
            "pitches": [c.pitches[0], c.pitches[-1]], "num_pitches": len(c.pitches),
            "identity": f"{c.sf2}|{c.sf2.stat().st_size}|{c.bank}|{c.program}"}


def previous_instruments(out: Path) -> dict[str, str]:
    """instrument_str -> identity, from the corpus.json an earlier build left in ``out`` ({} if none)."""
    try:
        info = json.loads((out / CORPUS_JSON).read_text())
        return {i["instrument_str"]: i["identity"] for i in info["instruments"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def drop_counts(plan: "CorpusPlan") -> Counter:
    """Presets left out per reason (:data:`DROP_REASONS`)."""
    counts = Counter(e.reason for e in plan.excluded)
    counts["duplicate"] = len(plan.dedupe.duplicate_of)
    counts["silent"] = len(plan.dedupe.silent)
    return Counter({k: v for k, v in counts.items() if v})


def per_soundfont(plan: "CorpusPlan") -> list[dict]:
    """Each SoundFont's presets, instruments kept, and presets left out per reason."""
    rows = {str(p): {"sf2": str(p), "bytes": p.stat().st_size, "presets": 0, "instruments": 0,
                     "notes": 0, "left_out": Counter()} for p in plan.soundfonts}
    for e in plan.excluded:
        rows[str(e.sf2)]["left_out"][e.reason] += 1
    for c in plan.candidates:
        row = rows[str(c.sf2)]
        if c.key in plan.dedupe.duplicate_of:
            row["left_out"]["duplicate"] += 1
    for c in plan.dedupe.silent:
        rows[str(c.sf2)]["left_out"]["silent"] += 1
    for c in plan.dedupe.kept:
        rows[str(c.sf2)]["instruments"] += 1
        rows[str(c.sf2)]["notes"] += len(c.pitches) * len(plan.velocities)
    for row in rows.values():
        row["presets"] = row["instruments"] + sum(row["left_out"].values())
        row["left_out"] = dict(sorted(row["left_out"].items()))
    return list(rows.values())


def per_family(plan: "CorpusPlan") -> dict[str, dict]:
    """Instruments and planned notes per NSynth family, beside NSynth's notes."""
    table = {f: {"instruments": 0, "notes": 0, "nsynth_notes": NSYNTH_FAMILY_NOTES[f]} for f in nsynth.FAMILIES}
    for c in plan.dedupe.kept:
        table[c.family]["instruments"] += 1
        table[c.family]["notes"] += len(c.pitches) * len(plan.velocities)
    return table


def format_plan(plan: "CorpusPlan") -> str:
    """The plan as a person reads it: per SoundFont, per reason left out, per family beside NSynth."""
    lines = [f"{plan.presets} presets in {len(plan.soundfonts)} SoundFont(s): {len(plan.dedupe.kept)} instruments, "
             f"{plan.num_notes} notes planned", "", f"{'SoundFont':34} {'presets':>7} {'kept':>5} {'notes':>7}  left out"]
    for row in per_soundfont(plan):
        left = ", ".join(f"{k} {v}" for k, v in row["left_out"].items())
        lines.append(f"{Path(row['sf2']).name:34} {row['presets']:7d} {row['instruments']:5d} {row['notes']:7d}  {left}")
    lines += ["", "left out, per reason:"]
    for reason, n in sorted(drop_counts(plan).items(), key=lambda kv: -kv[1]):
        lines.append(f"  {n:5d} {reason}: {DROP_REASONS[reason]}")
    lines += ["", f"{'family':12} {'instruments':>11} {'notes':>8} {'NSynth notes':>13}"]
    table = per_family(plan)
    for family, row in table.items():
        lines.append(f"{family:12} {row['instruments']:11d} {row['notes']:8d} {row['nsynth_notes']:13d}")
    lines.append(f"{'total':12} {len(plan.dedupe.kept):11d} {plan.num_notes:8d} {NSYNTH_NOTES:13d}"
                 f"  (NSynth: {NSYNTH_INSTRUMENTS} instruments)")
    return "\n".join(lines)


def write_corpus_json(out: Path, plan: "CorpusPlan", build: "CorpusBuild | None" = None) -> Path:
    """Write ``<out>/corpus.json`` atomically; the build's counts once there are some."""
    d = plan.dedupe
    by_key = {c.key: name for name, c in plan.instruments}
    dropped = [{"sf2": str(e.sf2), "bank": e.bank, "program": e.program, "preset": e.preset,
                "reason": e.reason, "detail": e.detail} for e in plan.excluded]
    for c in plan.candidates:
        if c.key in d.duplicate_of:
            kept_key, dist = d.duplicate_of[c.key]
            dropped.append({**corpus_record(c), "reason": "duplicate", "duplicate_of": by_key[kept_key],
                            "distance_db": round(dist, 3)})
    dropped += [{**corpus_record(c), "reason": "silent", "loudest_dbfs": round(d.loudest_dbfs[c.key], 1)}
                for c in d.silent]
    info = {
        "settings": {"velocities": list(plan.velocities), "held_seconds": HELD_FRAMES / SAMPLE_RATE,
                     "release_seconds": RELEASE_FRAMES / SAMPLE_RATE, "dedupe_tolerance_db": d.tolerance_db,
                     "reference_pitches": list(REFERENCE_PITCHES), "reference_velocity": REFERENCE_VELOCITY},
        "soundfonts": per_soundfont(plan),
        "left_out": {k: {"count": v, "why": DROP_REASONS[k]} for k, v in sorted(drop_counts(plan).items())},
        "families": per_family(plan),
        "instruments": [{"instrument_str": name, "instrument": i, **corpus_record(c),
                         "notes": len(c.pitches) * len(plan.velocities)}
                        for i, (name, c) in enumerate(plan.instruments)],
        "dropped": dropped,
        "dedupe_seconds": round(d.seconds, 2),
    }
    if build is not None:
        info["build"] = {"out": str(build.out), "parquet": build.parquet, "planned": build.planned,
                         "written": build.written, "rendered": build.rendered, "existing": build.existing,
                         "silent": build.silent, "rejected": build.rejected, "clipped": build.clipped,
                         "rejects": build.rejects, "render_seconds": round(build.render_seconds, 2),
                         "total_seconds": round(build.total_seconds, 2)}
    path = out / CORPUS_JSON
    tmp = path.with_name(f".{CORPUS_JSON}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, path)
    return path
