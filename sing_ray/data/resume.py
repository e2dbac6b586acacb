"""Resuming an ingest that was killed: what its staging folder already holds.

A local ingest builds its dataset in a hidden sibling folder named after its
inputs (:func:`staging_name`: the source, its examples.json checksum and the
options that change the files). Each write task, once a shard file is written,
records the shard's report (its rows, accepted instruments and rejects with
their reasons) as ``_reports/<shard>.json``, written atomically. A later ingest
with the same inputs finds that folder, takes the shards that have a report as
done, and writes only the others: nothing is lost (a shard without a report is
written again, whole) and nothing is doubled (shard files have fixed names).
"""
from __future__ import annotations

import hashlib
import json
import logging

from .storage import TMP_MARK, Location

log = logging.getLogger(__name__)

REPORTS_DIR = "_reports"


def staging_name(dataset_name: str, source_uri: str, examples_sha256: str, **options) -> str:
    """The hidden staging folder's name for one ingest's inputs: ``.<name>.ingest-<key>``."""
    text = json.dumps({"source": source_uri, "examples_sha256": examples_sha256, **options}, sort_keys=True)
    return f".{dataset_name}.ingest-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def report_relpath(shard_path: str) -> str:
    """Where the report of ``notes/part-....parquet`` is kept."""
    return f"{REPORTS_DIR}/{shard_path.rsplit('/', 1)[-1].removesuffix('.parquet')}.json"


def save_report(where: Location, report: dict) -> None:
    """Record one finished shard's report (after its file is complete)."""
    where.write_atomic(json.dumps(report).encode(), report_relpath(report["path"]))


def load_reports(where: Location, planned: set[str]) -> dict[str, dict]:
    """The reports of the shards a killed ingest finished, keyed by shard path.

    Args:
        where: the staging folder.
        planned: the shard paths this ingest plans (a report of any other is ignored).

    Returns:
        the usable reports: planned, readable, and with their shard file present when
        it has rows. Stray temporary files of writes cut short are deleted.
    """
    if not where.exists(REPORTS_DIR):
        return {}
    reports = {}
    for name in where.list_names(REPORTS_DIR):
        rel = f"{REPORTS_DIR}/{name}"
        if TMP_MARK in name:
            where.delete(rel)
            continue
        try:
            report = json.loads(where.read_bytes(rel))
        except (OSError, json.JSONDecodeError) as err:
            log.warning("%s: unreadable (%s); its shard is written again", where.display(rel), err)
            continue
        path = report.get("path") if isinstance(report, dict) else None
        if path not in planned or report_relpath(path) != rel:
            continue
        if report.get("num_rows") and not where.exists(path):
            continue
        reports[path] = report
    return reports


def clear_reports(where: Location) -> None:
    """Remove the reports once the dataset's own files (rejects, manifest) hold what they said."""
    if where.exists(REPORTS_DIR):
        where.fs.delete_dir(where.join(REPORTS_DIR))
