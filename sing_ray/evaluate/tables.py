"""Markdown tables of summaries: per group, the listener's table beside the real notes, the nearest
key and silence, the held-out beside the training notes (fit). Ray-free."""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from .. import timbre
from .metrics import NEAR_SILENT_DB, PITCH_TOLERANCE_CENTS, RMS_DB_FLOOR
from .nearest_key import NEAREST_KEY_PREFIX
from .summary import scores_like_silence


_COLUMNS = (("num_notes", "notes", "{:d}"), ("wav_mse", "wav MSE", "{:.5f}"),
            ("spectral_l1", "spectral L1", "{:.4f}"), ("mrstft", "MR-STFT", "{:.4f}"),
            ("pitch_accuracy", "pitch acc.", "{:.1%}"), ("median_abs_cents", "median \\|cents\\|", "{:.1f}"),
            ("pitch_accuracy_real", "pitch acc. (real)", "{:.1%}"), ("fd_logmel", "FD logmel", "{:.3f}"))
# Loudness and the silence baseline, per group: what a listener notices first.
LEVEL_COLUMNS = (("num_notes", "notes", "{:d}"), ("median_rms_db", "RMS dBFS", "{:.1f}"),
                 ("median_rms_db_real", "real RMS dBFS", "{:.1f}"),
                 ("median_rms_db_diff", "gen − real dB", "{:+.1f}"),
                 ("median_abs_rms_db_diff", "\\|gen − real\\| dB", "{:.1f}"),
                 ("num_near_silent", "near-silent", "{:d}"), ("near_silent_share", "near-silent share", "{:.0%}"),
                 ("spectral_l1", "spectral L1", "{:.4f}"), ("spectral_l1_silence", "silence's L1", "{:.4f}"),
                 ("spectral_l1_vs_silence", "L1 / silence's", "{:.2f}"))
_LEVEL_KEYS = ("median_rms_db", "median_rms_db_real", "nk_median_rms_db")
# Timbre beside the nearest key and silence, per group.
TIMBRE_COLUMNS = (("num_notes", "notes", "{:d}"), ("median_lts_db", "lts dB", "{:.1f}"),
                  ("nk_median_lts_db", "nearest key lts dB", "{:.1f}"),
                  ("median_lts_db_silence", "silence's lts dB", "{:.1f}"),
                  ("median_lts_loud_db", "loud-band lts dB", "{:.1f}"),
                  ("nk_median_lts_loud_db", "nearest key loud-band lts dB", "{:.1f}"),
                  ("median_envelope_db", "envelope dB", "{:.1f}"),
                  ("nk_median_envelope_db", "nearest key envelope dB", "{:.1f}"),
                  ("median_envelope_db_silence", "silence's envelope dB", "{:.1f}"),
                  ("closer_than_nearest_key_share", "closer than nearest key", "{:.0%}"),
                  ("num_nearest_key_missing", "no nearest key", "{:d}"))
# Held-out beside training notes: the model's figures, the nearest key's and silence's.
FIT_COLUMNS = (("num_notes", "notes", "{:d}"), ("pitch_accuracy", "in tune", "{:.1%}"),
               ("pitch_accuracy_real", "real in tune", "{:.1%}"),
               ("nk_pitch_accuracy", "nearest key in tune", "{:.1%}"),
               ("median_abs_rms_db_diff", "\\|gen − real\\| dB", "{:.1f}"),
               ("nk_median_abs_rms_db_diff", "nearest key \\|gen − real\\| dB", "{:.1f}"),
               ("spectral_l1_vs_silence", "L1 / silence's", "{:.2f}"),
               ("nk_spectral_l1_vs_silence", "nearest key L1 / silence's", "{:.2f}"),
               ("median_lts_db", "lts dB", "{:.1f}"), ("nk_median_lts_db", "nearest key lts dB", "{:.1f}"),
               ("median_lts_db_silence", "silence's lts dB", "{:.1f}"),
               ("median_envelope_db", "envelope dB", "{:.1f}"),
               ("nk_median_envelope_db", "nearest key envelope dB", "{:.1f}"),
               ("closer_than_nearest_key_share", "closer than nearest key", "{:.0%}"))


def _cell(value: Any, fmt: str, key: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if key in _LEVEL_KEYS and value <= RMS_DB_FLOOR:
        return "silent"
    return fmt.format(value)


def markdown_table(rows: Mapping[str, Mapping[str, Any]], first: str,
                   columns: Sequence[tuple[str, str, str]] = _COLUMNS) -> str:
    """A Markdown table of summaries, one row per key of ``rows``; absent columns are left out.

    Args:
        rows: ``{row name: summary}`` (:func:`summarize_group`'s fields).
        first: the first column's heading.
        columns: ``(key, heading, format)`` triples; the default is the Table 1, MR-STFT, pitch
            and FD columns, :data:`LEVEL_COLUMNS` the loudness and silence ones.
    """
    present = [c for c in columns if any(c[0] in r for r in rows.values())]
    lines = ["| " + " | ".join([first] + [c[1] for c in present]) + " |",
             "| " + " | ".join(["---"] + ["---:"] * len(present)) + " |"]
    for name, row in rows.items():
        lines.append("| " + " | ".join([str(name)] + [_cell(row.get(k), f, k) for k, _, f in present]) + " |")
    return "\n".join(lines)


def _share(count: int | None, total: int) -> str:
    return "–" if count is None else f"{count} of {total} ({count / total:.0%})" if total else "–"


# The rows of :func:`listener_table`, by name; the quick start prints the short set.


# The rows of :func:`listener_table`, by name; the quick start prints the short set.
LISTENER_ROWS = ("in_tune", "level", "level_diff", "abs_level_diff", "near_silent", "spectral_l1",
                 "spectral_l1_vs_silence", "lts_db", "lts_loud_db", "envelope_db", "closer")
SHORT_LISTENER_ROWS = ("in_tune", "level_diff", "near_silent", "spectral_l1", "spectral_l1_vs_silence",
                       "lts_db", "envelope_db", "closer")


def listener_table(overall: Mapping[str, Any], rows: Sequence[str] = LISTENER_ROWS, label: str = "notes") -> str:
    """The model's scores beside the real notes', the nearest key's and an all-zero output's.

    Args:
        overall: one group's summary (:func:`summarize_group`).
        rows: which of :data:`LISTENER_ROWS`; a row whose numbers are absent is left out.
        label: what the notes are, in the first heading (``70 notes``, ``70 training notes``).
    Returns:
        a Markdown table with columns *model*, *real notes*, *nearest key (sampler)* (when the
        summary has the nearest key's figures) and *silence (all-zero output)*; a cell that
        does not apply is "–".
    """
    n = int(overall.get("num_notes") or 0)
    g = overall.get
    with_nk = any(k.startswith(NEAREST_KEY_PREFIX) for k in overall)
    k_nk = int(g("nk_num_notes") or 0)

    def level(key: str) -> str:
        return _cell(g(key), "{:.1f}", key)

    def nk(key: str, fmt: str) -> str:
        return _cell(g(f"{NEAREST_KEY_PREFIX}{key}"), fmt, f"{NEAREST_KEY_PREFIX}{key}")

    closer = g("num_closer_than_nearest_key")
    # name: (label, key that must be present, model, real notes, nearest key, silence)
    table = {
        "in_tune": (f"in tune (f0 within {PITCH_TOLERANCE_CENTS:g} cents)", "pitch_accuracy",
                    _cell(g("pitch_accuracy"), "{:.1%}"), _cell(g("pitch_accuracy_real"), "{:.1%}"),
                    nk("pitch_accuracy", "{:.1%}"), "0.0%"),
        "level": ("median loudness (RMS dBFS)", "median_rms_db", level("median_rms_db"),
                  level("median_rms_db_real"), nk("median_rms_db", "{:.1f}"), "silent"),
        "level_diff": ("median loudness difference, generated − real (dB)", "median_rms_db_diff",
                       _cell(g("median_rms_db_diff"), "{:+.1f}"), "0.0", nk("median_rms_db_diff", "{:+.1f}"), "−∞"),
        "abs_level_diff": ("median \\|generated − real\\| (dB)", "median_abs_rms_db_diff",
                           _cell(g("median_abs_rms_db_diff"), "{:.1f}"), "0.0",
                           nk("median_abs_rms_db_diff", "{:.1f}"), "∞"),
        "near_silent": (f"near-silent notes (RMS below {NEAR_SILENT_DB:g} dBFS)", "num_near_silent",
                        _share(g("num_near_silent"), n), _share(g("num_near_silent_real"), n),
                        _share(g("nk_num_near_silent"), k_nk), _share(n, n)),
        "spectral_l1": ("spectral L1 (Table 1)", "spectral_l1", _cell(g("spectral_l1"), "{:.4f}"), "0.0000",
                        nk("spectral_l1", "{:.4f}"), _cell(g("spectral_l1_silence"), "{:.4f}")),
        "spectral_l1_vs_silence": ("spectral L1 / silence's", "spectral_l1_vs_silence",
                                   _cell(g("spectral_l1_vs_silence"), "{:.2f}"), "0.00",
                                   nk("spectral_l1_vs_silence", "{:.2f}"), "1.00"),
        "lts_db": ("median long-term spectrum distance, lts_db (dB)", "median_lts_db",
                   _cell(g("median_lts_db"), "{:.1f}"), "0.0", nk("median_lts_db", "{:.1f}"),
                   _cell(g("median_lts_db_silence"), "{:.1f}")),
        "lts_loud_db": (f"median distance over the loud bands (within {timbre.LTS_LOUD_DB:g} dB), lts_loud_db (dB)",
                        "median_lts_loud_db", _cell(g("median_lts_loud_db"), "{:.1f}"), "0.0",
                        nk("median_lts_loud_db", "{:.1f}"), _cell(g("median_lts_loud_db_silence"), "{:.1f}")),
        "envelope_db": ("median envelope distance, envelope_db (dB)", "median_envelope_db",
                        _cell(g("median_envelope_db"), "{:.1f}"), "0.0", nk("median_envelope_db", "{:.1f}"),
                        _cell(g("median_envelope_db_silence"), "{:.1f}")),
        "closer": ("closer to the real note than the nearest key (lts_db)", "num_closer_than_nearest_key",
                   _share(closer, k_nk), "–", "–", "–"),
    }
    heading = ["model", "real notes"] + (["nearest key (sampler)"] if with_nk else []) + ["silence (all-zero output)"]
    lines = [f"| {n} {label} | " + " | ".join(heading) + " |", "| --- |" + " ---: |" * len(heading)]
    for name in rows:
        text, key, model, real, near, silence = table[name]
        if key in overall:
            lines.append("| " + " | ".join([text, model, real] + ([near] if with_nk else []) + [silence]) + " |")
    return "\n".join(lines)


def listener_verdict(overall: Mapping[str, Any]) -> list[str]:
    """Plain sentences on what a listener would notice, from one group's summary.

    Says outright when the model scores no better than silence and when its notes are
    near-silent; then the loudness gap and pitch accuracy against the real notes.
    """
    g = overall.get
    n = int(g("num_notes") or 0)
    out: list[str] = []
    if g("spectral_l1_vs_silence") is not None:
        if scores_like_silence(overall):
            out.append(f"**No better than silence**: the mean spectral L1 ({g('spectral_l1'):.4f}) is "
                       f"{g('spectral_l1_vs_silence'):.2f} times that of an all-zero output on the same notes "
                       f"({g('spectral_l1_silence'):.4f}); by Table 1's measure this model has learnt nothing.")
        else:
            out.append(f"Better than silence: the mean spectral L1 ({g('spectral_l1'):.4f}) is "
                       f"{g('spectral_l1_vs_silence'):.2f} times an all-zero output's ({g('spectral_l1_silence'):.4f}).")
    if g("num_near_silent") is not None and n:
        k = g("num_near_silent")
        if k == n:
            out.append(f"**The model outputs near-silence**: all {n} generated notes are below "
                       f"{NEAR_SILENT_DB:g} dBFS RMS.")
        else:
            real = g("num_near_silent_real")
            of_real = "" if real is None else f"; the real notes: {real:g} of {n}"
            if k:
                out.append(f"{k:g} of {n} generated notes ({k / n:.0%}) {'is' if k == 1 else 'are'} near-silent "
                           f"(below {NEAR_SILENT_DB:g} dBFS RMS{of_real}).")
            else:
                out.append(f"No generated note is near-silent (below {NEAR_SILENT_DB:g} dBFS RMS{of_real}).")
    diff = g("median_rms_db_diff")
    if diff is not None and g("median_rms_db_real") is not None:
        side = "quieter" if diff < 0 else "louder"
        out.append(f"Generated notes are a median {abs(diff):.1f} dB {side} than the real notes "
                   f"(median level {_cell(g('median_rms_db'), '{:.1f}', 'median_rms_db')} against "
                   f"{g('median_rms_db_real'):.1f} dBFS; median |difference| {g('median_abs_rms_db_diff'):.1f} dB).")
    if g("pitch_accuracy") is not None:
        real = g("pitch_accuracy_real")
        out.append(f"{g('pitch_accuracy'):.0%} of generated notes are in tune (f0 within "
                   f"{PITCH_TOLERANCE_CENTS:g} cents)" + (f", against {real:.0%} of the real notes with the same "
                                                          "tracker." if real is not None else "."))
    if g("median_lts_db") is not None:
        others = [f"the nearest key: {g('nk_median_lts_db'):.1f} dB"] if g("nk_median_lts_db") is not None else []
        if g("median_lts_db_silence") is not None:
            others.append(f"silence: {g('median_lts_db_silence'):.1f} dB")
        text = (f"Timbre: the long-term spectrum lies a median {g('median_lts_db'):.1f} dB from the real notes'"
                + (f" ({'; '.join(others)})" if others else "") + ".")
        share, k = g("closer_than_nearest_key_share"), int(g("nk_num_notes") or 0)
        if share is not None:
            text += (f" The model is closer than the nearest key on {g('num_closer_than_nearest_key')} of {k} "
                     f"notes ({share:.0%}).")
        out.append(text)
    missing = g("num_nearest_key_missing")
    if missing:
        out.append(f"{missing} of {n} notes have no nearest key (no other training pitch of their instrument "
                   "at their velocity): the nearest key's figures leave them out.")
    return out


def listener_summary(overall: Mapping[str, Any], rows: Sequence[str] = LISTENER_ROWS, label: str = "notes") -> str:
    """:func:`listener_verdict` as a bullet list, then :func:`listener_table`."""
    verdict = listener_verdict(overall)
    return "\n".join([f"- {line}" for line in verdict] + ([""] if verdict else [])
                     + [listener_table(overall, rows, label)])


def fit_rows(report: Mapping[str, Any], group: str | None = None) -> dict[str, Mapping[str, Any]]:
    """Held-out beside training notes, as :func:`markdown_table` rows (for :data:`FIT_COLUMNS`).

    Args:
        report: an evaluation report with ``train_notes`` (:func:`evaluate_model`).
        group: None for the overall figures, else a family name (``by_family``).
    Returns:
        ``{"held-out (<split>)": summary, "training notes": summary}``; a family one side lacks is left out.
    """
    rows = {}
    for name, summary in ((f"held-out ({report['split']})", report["summary"]),
                          ("training notes", (report.get("train_notes") or {}).get("summary"))):
        if summary is None:
            continue
        row = summary["overall"] if group is None else summary["by_family"].get(group)
        if row:
            rows[name] = row
    return rows


def fit_table(report: Mapping[str, Any], by_family: bool = False) -> str:
    """Held-out and training notes side by side (:data:`FIT_COLUMNS`), overall or per family."""
    if not by_family:
        return markdown_table(fit_rows(report), "scored", FIT_COLUMNS)
    families = sorted(set(report["summary"]["by_family"]) | set(report["train_notes"]["summary"]["by_family"]))
    rows = {f"{family}, {name}": row for family in families for name, row in fit_rows(report, family).items()}
    return markdown_table(rows, "family, scored", FIT_COLUMNS)
