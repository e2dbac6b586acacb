"""The quick start's last stage: held-out scores, spectrogram sheet, demo WAV, all logged to the run."""
import mlflow
import numpy as np
import pytest
import soundfile as sf
import torch

from sing_ray import quickstart as qs
from sing_ray.checkpoint import save_checkpoint
from sing_ray.config import load_config
from sing_ray.evaluate import NEAR_SILENT_DB, rms_dbfs
from sing_ray.generate import Generator
from sing_ray.models import build_sing
from sing_ray.nsynth import SAMPLE_RATE

from conftest import make_nsynth

INSTRUMENTS = ["flute_synthetic_001", "guitar_acoustic_000"]


@pytest.fixture(scope="module")
def sing_checkpoint(tmp_path_factory):
    """An untrained tiny SING over two instruments, as checkpoint bytes."""
    cfg = load_config("tiny")
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path_factory.mktemp("qs") / "sing.pt", build_sing(cfg.model, len(INSTRUMENTS)),
                           config=cfg, phase="finetune", epoch=1, extra={"instruments": INSTRUMENTS})
    return path.read_bytes()


def _finished_run(uri: str) -> str:
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("qs-test")
    with mlflow.start_run(run_name="quickstart") as run:
        return run.info.run_id


def test_fade_ramps_the_ends_and_keeps_the_middle():
    wav = np.ones(1000, dtype=np.float32)
    out = qs.fade(wav, 10, 100)
    assert out[0] < 0.05 and out[-1] < 0.01 and np.all(out[10:900] == 1.0)
    assert np.all(np.diff(out[:10]) > 0) and np.all(np.diff(out[-100:]) < 0)
    assert np.all(wav == 1.0)                      # a copy, not in place
    assert qs.fade(np.ones(5, dtype=np.float32), 10, 10).shape == (5,)


class _Constant:
    """A stand-in generator: every note a constant at 0.5 of full scale."""

    instruments = INSTRUMENTS

    def generate(self, instruments, pitches, velocities):
        assert len(set(instruments)) == 1 and list(pitches) == list(qs.DEMO_PITCHES)
        assert set(velocities) == {qs.DEMO_VELOCITY}
        return np.full((len(pitches), 64000), 0.5, dtype=np.float32)


def test_scale_is_each_instrument_in_turn_with_faded_half_second_notes():
    wav = qs.synthesize_scale(_Constant(), INSTRUMENTS)
    note, gap = int(qs.DEMO_NOTE_SECONDS * SAMPLE_RATE), int(qs.DEMO_GAP_SECONDS * SAMPLE_RATE)
    per = len(qs.DEMO_PITCHES) * note + gap
    assert wav.shape == (2 * per,)
    first = wav[:note]
    assert first[0] < 0.05 and first[-1] < 0.01 and first[note // 2] == 0.5
    assert np.all(wav[per - gap:per] == 0)         # the gap after the first instrument
    assert wav[per + note // 2] == 0.5             # the second instrument starts after it


def test_compare_scale_plays_the_dataset_notes_then_the_model_for_each_instrument():
    from sing_ray.nsynth import format_note_str

    # The dataset's notes: a quieter constant (0.25), the first instrument's 62 missing (silent).
    notes = {format_note_str(i, p, qs.DEMO_VELOCITY): np.full(64000, 0.25, dtype=np.float32)
             for i in INSTRUMENTS for p in qs.DEMO_PITCHES if (i, p) != (INSTRUMENTS[0], 62)}
    wav, half = qs.compare_scale(_Constant(), INSTRUMENTS, notes)
    note, gap = int(qs.DEMO_NOTE_SECONDS * SAMPLE_RATE), int(qs.DEMO_GAP_SECONDS * SAMPLE_RATE)
    phrase = len(qs.DEMO_PITCHES) * note
    assert wav.shape == half.shape == (len(INSTRUMENTS) * 2 * (phrase + gap),)
    for k, name in enumerate(INSTRUMENTS):
        start = k * 2 * (phrase + gap)
        first, second = slice(start, start + phrase), slice(start + phrase + gap, start + 2 * phrase + gap)
        assert (half[first] == 0).all() and (half[second] == 1).all()
        between = slice(start + phrase, start + phrase + gap)
        assert not wav[between].any() and (half[between] == -1).all()
        dataset, model = wav[first], wav[second]
        # Both halves audible, each at its own level; a missing note is silence in the dataset's half.
        assert dataset[note // 2] == 0.25 and model[note // 2] == 0.5
        assert rms_dbfs(dataset) > NEAR_SILENT_DB and rms_dbfs(model) > NEAR_SILENT_DB
        assert dataset[note + note // 2] == (0.0 if name == INSTRUMENTS[0] else 0.25)


def test_demo_wav_plays_every_instrument_and_names_unheard_pitches(sing_checkpoint, tmp_path):
    demo = qs.write_demo(sing_checkpoint, tmp_path / "lib" / qs.DEMO_FILE, trained_pitches=(60, 64, 67, 72))
    data, rate = sf.read(demo.path, dtype="float32")
    assert rate == SAMPLE_RATE and data.ndim == 1
    assert demo.instruments == INSTRUMENTS
    assert demo.seconds == pytest.approx(len(INSTRUMENTS) * demo.seconds_per_instrument)
    assert demo.seconds_per_instrument == pytest.approx(8 * 0.5 + 0.25)
    assert demo.unheard == [62, 65, 69, 71]
    assert demo.rms_db == pytest.approx(rms_dbfs(data), abs=0.05)
    # What was written is what the model generates, cut and faded.
    generated = Generator.from_checkpoint(sing_checkpoint).generate([INSTRUMENTS[0]] * 8, list(qs.DEMO_PITCHES),
                                                                    [127] * 8)
    keep = int(qs.DEMO_NOTE_SECONDS * SAMPLE_RATE)
    middle = slice(keep // 4, keep // 2)
    assert np.allclose(data[keep + middle.start:keep + middle.stop], generated[1, middle], atol=2 / 32768)


def test_log_showcase_logs_scores_and_files_to_the_finished_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = _finished_run(uri)
    sheet, wav = tmp_path / qs.SHEET_FILE, tmp_path / qs.DEMO_FILE
    sheet.write_bytes(b"png")
    wav.write_bytes(b"wav")
    scores = {"num_notes": 4, "pitch_accuracy": 0.25, "median_rms_db_diff": -12.5, "num_near_silent": 1,
              "spectral_l1_vs_silence": 0.8, "median_abs_cents": None}
    demo = qs.Demo(wav, INSTRUMENTS, list(qs.DEMO_PITCHES), [], -31.0, 8.5, 4.25)
    logged = qs.log_showcase(run_id, uri, scores, [sheet, wav], demo)
    assert logged == [f"quickstart/{qs.SHEET_FILE}", f"quickstart/{qs.DEMO_FILE}"]
    client = mlflow.MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"heldout.num_notes": 4, "heldout.pitch_accuracy": 0.25,
                                "heldout.median_rms_db_diff": -12.5, "heldout.num_near_silent": 1,
                                "heldout.spectral_l1_vs_silence": 0.8, "demo.rms_db": -31.0}
    assert {a.path for a in client.list_artifacts(run_id, "quickstart")} == set(logged)


@pytest.mark.slow
def test_show_model_scores_held_out_notes_draws_and_logs(sing_checkpoint, tmp_path, ray_local, monkeypatch):
    from sing_ray.data.ingest import ingest

    monkeypatch.chdir(tmp_path)
    make_nsynth(tmp_path / "src", instruments=INSTRUMENTS, pitches=range(48, 60), velocities=(50, 127))
    ingest(str(tmp_path / "src"), str(tmp_path / "ds"), progress=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = _finished_run(uri)
    shown = qs.show_model(sing_checkpoint, str(tmp_path / "ds"), tmp_path / "lib", run_id, uri,
                          trained_pitches=range(48, 60), max_notes=6)
    s = shown.scores
    assert 1 <= s["num_notes"] <= 6 and s["num_notes"] <= shown.split_size
    # The synthetic tones are in tune and far above the near-silent line; silence's L1 is the bar.
    assert s["pitch_accuracy_real"] == 1.0 and s["num_near_silent_real"] == 0
    assert s["median_rms_db_real"] > NEAR_SILENT_DB
    assert s["spectral_l1_vs_silence"] == pytest.approx(s["spectral_l1"] / s["spectral_l1_silence"])
    assert shown.sheet == tmp_path / "lib" / qs.SHEET_FILE and shown.sheet.stat().st_size > 10_000
    assert shown.demo.path.exists() and shown.demo.unheard == [60, 62, 64, 65, 67, 69, 71, 72]
    run = mlflow.MlflowClient(uri).get_run(run_id)
    assert run.data.metrics["heldout.num_notes"] == s["num_notes"]
    assert run.data.metrics["heldout.spectral_l1_vs_silence"] == pytest.approx(s["spectral_l1_vs_silence"])
    assert "demo.rms_db" in run.data.metrics
    # Timbre beside the nearest-key sampler (a training note stretched to the pitch) and silence.
    assert s["nk_num_notes"] + s["num_nearest_key_missing"] == s["num_notes"]
    assert s["nk_median_lts_db"] < s["median_lts_db_silence"]
    for key in ("median_lts_db", "median_envelope_db", "nk_median_lts_db", "closer_than_nearest_key_share"):
        assert run.data.metrics[f"heldout.{key}"] == pytest.approx(s[key]), key
    assert set(shown.logged) == {f"quickstart/{qs.SHEET_FILE}", f"quickstart/{qs.DEMO_FILE}",
                                 f"quickstart/{qs.DEMO_COMPARE_FILE}"}
    # The compare demo: per instrument the scale from the dataset (pitches 48-59: every note of the
    # C4 scale is a training key stretched up), then from the model; both halves audible.
    c = shown.compare_demo
    data, rate = sf.read(c.path, dtype="float32")
    per = len(qs.DEMO_PITCHES) * qs.DEMO_NOTE_SECONDS + qs.DEMO_GAP_SECONDS
    assert c.seconds_per_instrument == 2 * per and len(data) == round(len(INSTRUMENTS) * 2 * per * rate)
    assert (c.num_real, c.num_nearest, c.num_none) == (0, 16, 0) and c.nearest_pitches == list(qs.DEMO_PITCHES)
    assert c.sources[INSTRUMENTS[0]][0].startswith("nearest key 5")
    half = int(per * rate)
    for k in range(2 * len(INSTRUMENTS)):
        assert rms_dbfs(data[k * half:(k + 1) * half]) > NEAR_SILENT_DB, k
    assert run.data.metrics["demo_compare.num_nearest"] == 16
    assert run.data.metrics["demo_compare.dataset_rms_db"] == pytest.approx(c.rms_db_dataset)
