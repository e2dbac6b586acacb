"""The evaluate package: a Ray-free core a script can use, and every name at the package's top."""
import subprocess
import sys

import sing_ray.evaluate as ev


def test_the_core_scores_and_reports_without_ray_or_mlflow(tmp_path):
    """Scoring notes held in memory and writing the report imports neither Ray nor MLflow."""
    script = f"""
import sys
import numpy as np
from sing_ray.evaluate import metrics, nearest_key, report, summary, tables

rng = np.random.default_rng(0)
real = (0.1 * rng.standard_normal((4, 16000))).astype(np.float32)
notes = metrics.note_metrics(0.5 * real, real, [60, 62, 64, 66], with_pitch=False, with_reference_pitch=False,
                             with_embedding=False)
notes.update(note_str=np.array(["a-060-100", "a-062-100", "b-064-100", "b-066-100"]),
             instrument_family_str=np.array(["flute", "flute", "guitar", "guitar"]),
             pitch=np.array([60, 62, 64, 66]))
rep = {{"model": "m.pt", "dataset": "ds", "split": "test", "num_notes": 4, "summary": summary.summarize(notes),
        "definitions": report.definitions()}}
paths = report.write_report(rep, {str(tmp_path)!r}, notes)
assert "## What a listener would notice" in paths["markdown"].read_text()
assert tables.listener_table(rep["summary"]["overall"]).startswith("| 4 notes | model | real notes |")
loaded = [m for m in ("ray", "mlflow") if m in sys.modules]
assert not loaded, loaded
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)


def test_importing_the_package_starts_nothing():
    loaded = subprocess.run([sys.executable, "-c", "import sys, sing_ray.evaluate; "
                             "print(' '.join(m for m in ('ray', 'mlflow') if m in sys.modules))"],
                            check=True, capture_output=True, text=True, timeout=300).stdout.strip()
    assert loaded == ""


def test_every_name_of_the_package_resolves():
    missing = [name for name in ev.__all__ if not hasattr(ev, name)]
    assert not missing
    # The names other modules, scripts and tests import from the package.
    for name in ("note_metrics", "summarize_group", "score_split", "score_split_here", "sample_split", "fetch_notes",
                 "fetch_held_notes", "load_nearest_keys", "shift_nearest_keys", "draw_spectrogram_sheet",
                 "find_training_run", "listener_summary", "SHORT_LISTENER_ROWS", "fit_table", "markdown_table",
                 "evaluate_model", "DEFAULT_TRAIN_NOTES", "NEAREST_KEY_SPLIT", "NEAR_SILENT_DB", "rms_dbfs",
                 "build_note_model", "cents_off", "estimate_f0", "in_tune", "PITCH_HOP_SECONDS", "audible_in_tune"):
        assert name in ev.__all__, name
