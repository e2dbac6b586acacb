"""The evaluation metrics on signals whose answers are known."""
import json

import numpy as np
import pytest
import torch

from sing_ray import evaluate as ev
from sing_ray.dsp import log_power
from sing_ray.nsynth import NUM_FRAMES, SAMPLE_RATE


def harmonic(pitch: float, seconds_held: float = 3.0, amp: float = 0.5, seed: int = 0) -> np.ndarray:
    """A 4 s harmonic note at a (fractional) MIDI pitch: held, then decaying. Returns (T,) float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(NUM_FRAMES) / SAMPLE_RATE
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    wave = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k
               for k in range(1, 5) if f0 * k < SAMPLE_RATE / 2)
    env = np.where(t < seconds_held, 1.0, np.exp(-(t - seconds_held) * 8))
    return (amp * env * wave / 2.1).astype(np.float32)


def test_note_against_itself_scores_perfectly():
    notes = np.stack([harmonic(60), harmonic(45, seed=1)])
    m = ev.note_metrics(notes, notes, [60, 45])
    for key in ("wav_mse", "spectral_l1", "mrstft", "mrstft_sc", "mrstft_logmag"):
        assert np.allclose(m[key], 0.0, atol=1e-7), key
    assert ev.in_tune(m["cents"]).all() and np.all(np.abs(m["cents"]) <= 5)
    assert np.allclose(m["emb_real"], m["emb_generated"])
    assert m["emb_real"].shape == (2, ev.EMBEDDING_DIM)


@pytest.mark.parametrize("detune, tuned", [(30, True), (-30, True), (70, False), (-70, False)])
def test_detuned_copy_gives_its_cents(detune, tuned):
    pitch = 57
    cents = ev.cents_off(ev.estimate_f0(harmonic(pitch + detune / 100), pitch), pitch)
    # pyin's bins are 5 cents wide: the median f0 lands within one bin of the truth.
    assert cents == pytest.approx(detune, abs=5)
    assert bool(ev.in_tune(np.array([cents]))[0]) is tuned


def test_high_and_low_notes_track_within_a_few_cents():
    # Upsampling before pyin keeps high notes exact; 2.6 kHz is 20 cents off at 16 kHz.
    for pitch in (28, 100):
        assert abs(ev.cents_off(ev.estimate_f0(harmonic(pitch), pitch), pitch)) <= 5


def test_silence_against_a_note():
    note = harmonic(64)
    silence = np.zeros_like(note)
    m = ev.note_metrics(silence[None], note[None], [64])
    assert m["wav_mse"][0] == pytest.approx(float(np.mean(note.astype(np.float64) ** 2)), rel=1e-4)
    expected_l1 = log_power(torch.from_numpy(note)).double().mean().item()
    assert m["spectral_l1"][0] == pytest.approx(expected_l1, rel=1e-4)
    # ||0 - S|| / ||S|| = 1 at every resolution.
    assert m["mrstft_sc"][0] == pytest.approx(1.0, abs=1e-6)
    assert np.isnan(m["f0"][0]) and not ev.in_tune(m["cents"])[0]
    assert ev.in_tune(m["cents_real"])[0]
    # Silence on both sides is a perfect match, not 0 / 0.
    both = ev.multi_resolution_stft_distance(torch.zeros(1, NUM_FRAMES), torch.zeros(1, NUM_FRAMES))
    assert both["mrstft"].item() == 0.0


def test_frechet_distance_known_cases():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6))
    assert ev.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # Same covariance, means apart by d: the distance is |d|^2 exactly.
    shift = np.array([1.0, -2.0, 0, 0, 0.5, 0])
    assert ev.frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    # Closed form in 1-D: (m1 - m2)^2 + (s1 - s2)^2.
    assert ev.frechet_from_stats(np.array([0.0]), np.array([[4.0]]), np.array([1.0]), np.array([[1.0]])) \
        == pytest.approx(1.0 + 1.0)
    # Fewer notes than dimensions: still finite, and 0 for identical sets.
    few = rng.normal(size=(5, 64))
    assert ev.frechet_distance(few, few) == pytest.approx(0.0, abs=1e-4)


def test_frechet_over_embeddings_separates_silence_from_notes():
    real = np.stack([harmonic(p, seed=p) for p in (48, 55, 60, 67)])
    same = ev.frechet_distance(ev.note_embedding(real), ev.note_embedding(real))
    # 1 dB quieter: every band mean moves by log(0.89^2) where the note has energy.
    quieter = ev.frechet_distance(ev.note_embedding(real), ev.note_embedding(real * 10 ** (-1 / 20)))
    silent = ev.frechet_distance(ev.note_embedding(real), ev.note_embedding(np.zeros_like(real)))
    assert same < 1e-6 < quieter < 0.01 * silent


def test_summaries_group_by_family_and_octave(tmp_path):
    notes = {
        "note_str": np.array(["a", "b", "c", "d"]),
        "instrument_family_str": np.array(["flute", "flute", "guitar", "guitar"]),
        "pitch": np.array([59, 60, 61, 72]),
        "velocity": np.array([100, 100, 100, 100]),
        "wav_mse": np.array([1.0, 2.0, 3.0, 4.0]),
        "spectral_l1": np.array([0.1, 0.2, 0.3, 0.4]),
        "mrstft": np.array([1.0, 1.0, 1.0, 1.0]),
        "cents": np.array([10.0, np.nan, -60.0, 40.0]),
        "cents_real": np.array([0.0, 0.0, 0.0, 0.0]),
        "emb_real": np.random.default_rng(0).normal(size=(4, 3)),
    }
    notes["emb_generated"] = notes["emb_real"].copy()
    s = ev.summarize(notes)
    assert s["overall"]["num_notes"] == 4 and s["overall"]["wav_mse"] == pytest.approx(2.5)
    assert s["overall"]["pitch_accuracy"] == pytest.approx(0.5)      # NaN counts as a miss
    assert s["overall"]["untracked_share"] == pytest.approx(0.25)
    assert s["overall"]["median_abs_cents"] == pytest.approx(40.0)
    assert s["overall"]["fd_logmel"] == pytest.approx(0.0, abs=1e-9)
    assert s["by_family"]["guitar"]["spectral_l1"] == pytest.approx(0.35)
    assert set(s["by_octave"]) == {"3", "4", "5"} and s["by_octave"]["4"]["num_notes"] == 2
    assert s["by_octave"]["3"]["fd_logmel"] is None                # one note: no Fréchet distance
    report = {"model": "m.pt", "dataset": "ds", "split": "test", "num_notes": 4, "summary": s}
    paths = ev.write_report(report, tmp_path, notes)
    assert json.loads(paths["json"].read_text())["summary"]["by_octave"]["3"]["fd_logmel"] is None
    text = paths["markdown"].read_text()
    assert "| guitar | 2 |" in text and "NOT FAD-VGGish" in text
    assert paths["notes"].read_text().splitlines()[0].startswith("note_str,")


def test_keep_note_is_stable_and_near_the_fraction():
    names = [f"guitar_acoustic_{i:03d}-060-100" for i in range(2000)]
    kept = [n for n in names if ev.keep_note(n, 0.25, seed=3)]
    assert kept == [n for n in names if ev.keep_note(n, 0.25, seed=3)]
    assert 400 < len(kept) < 600


def test_half_scale_copy_is_six_db_quieter_and_silence_is_near_silent():
    real = np.stack([harmonic(60), harmonic(64, seed=1)])
    generated = np.stack([0.5 * real[0], np.zeros_like(real[1])])
    m = ev.note_metrics(generated, real, [60, 64], with_pitch=False, with_reference_pitch=False,
                        with_embedding=False)
    expected_real = 20 * np.log10(np.sqrt(np.mean(real.astype(np.float64) ** 2, axis=1)))
    assert m["rms_db_real"] == pytest.approx(expected_real, abs=1e-6)
    # Half the amplitude: 20 log10(0.5) = -6.02 dB, whatever the note.
    assert m["rms_db_diff"][0] == pytest.approx(-6.0206, abs=1e-3)
    assert m["rms_db"][0] == pytest.approx(m["rms_db_real"][0] - 6.0206, abs=1e-3)
    # Digital silence sits at the floor, far below the near-silent line.
    assert m["rms_db"][1] == ev.RMS_DB_FLOOR < ev.NEAR_SILENT_DB
    # Silence's spectral L1 is the mean of l(x), and an all-zero output scores it exactly.
    assert m["spectral_l1_silence"] == pytest.approx(
        log_power(torch.from_numpy(real)).double().mean(dim=(-1, -2)).numpy(), rel=1e-5)
    assert m["spectral_l1"][1] == m["spectral_l1_silence"][1]
    assert m["spectral_l1"][0] < m["spectral_l1_silence"][0]
    assert ev.rms_dbfs(np.full(100, 0.5)) == pytest.approx(-6.0206, abs=1e-3)


def _level_notes(generated: np.ndarray, real: np.ndarray, pitches) -> dict:
    m = ev.note_metrics(generated, real, pitches, with_embedding=False)
    k = len(real)
    return {"note_str": np.array([f"n{i}" for i in range(k)]), "instrument_family_str": np.array(["flute"] * k),
            "pitch": np.asarray(pitches), "velocity": np.full(k, 100), **m}


def test_silent_model_summary_says_no_better_than_silence(tmp_path):
    real = np.stack([harmonic(p, seed=p) for p in (48, 60, 67)])
    s = ev.summarize(_level_notes(np.zeros_like(real), real, [48, 60, 67]))["overall"]
    assert s["num_near_silent"] == 3 and s["near_silent_share"] == 1.0 and s["num_near_silent_real"] == 0
    assert s["spectral_l1_vs_silence"] == 1.0 and ev.scores_like_silence(s)
    assert s["median_rms_db"] == ev.RMS_DB_FLOOR
    assert s["pitch_accuracy"] == 0.0 and s["pitch_accuracy_real"] == 1.0
    verdict = " ".join(ev.listener_verdict(s))
    assert "**No better than silence**" in verdict and "**The model outputs near-silence**" in verdict
    table = ev.listener_table(s)
    assert "| near-silent notes (RMS below -60 dBFS) | 3 of 3 (100%) | 0 of 3 (0%) | 3 of 3 (100%) |" in table
    assert "| spectral L1 / silence's | 1.00 | 0.00 | 1.00 |" in table
    assert "| median loudness (RMS dBFS) | silent |" in table


def test_half_scale_model_summary_and_report(tmp_path):
    real = np.stack([harmonic(p, seed=p) for p in (48, 60, 67)])
    notes = _level_notes(0.5 * real, real, [48, 60, 67])
    summary = ev.summarize(notes)
    s = summary["overall"]
    assert s["median_rms_db_diff"] == pytest.approx(-6.0206, abs=1e-3)
    assert s["median_abs_rms_db_diff"] == pytest.approx(6.0206, abs=1e-3)
    assert s["median_rms_db"] == pytest.approx(s["median_rms_db_real"] - 6.0206, abs=1e-3)
    assert s["num_near_silent"] == 0 and s["near_silent_share"] == 0.0
    assert s["spectral_l1_silence"] == pytest.approx(float(notes["spectral_l1_silence"].mean()))
    assert s["spectral_l1_vs_silence"] == pytest.approx(s["spectral_l1"] / s["spectral_l1_silence"])
    assert 0 < s["spectral_l1_vs_silence"] < 1 and not ev.scores_like_silence(s)
    assert s["pitch_accuracy"] == 1.0
    verdict = " ".join(ev.listener_verdict(s))
    assert "a median 6.0 dB quieter than the real notes" in verdict and "No better than silence" not in verdict
    assert "No generated note is near-silent (below -60 dBFS RMS; the real notes: 0 of 3)." in verdict
    # One note under the line, beside the real notes' own count (a listener's yardstick).
    one = ev.listener_verdict({**s, "num_near_silent": 1, "num_near_silent_real": 1})
    assert "1 of 3 generated notes (33%) is near-silent (below -60 dBFS RMS; the real notes: 1 of 3)." in one
    report = {"model": "m.pt", "dataset": "ds", "split": "test", "num_notes": 3, "summary": summary}
    paths = ev.write_report(report, tmp_path, notes)
    text = paths["markdown"].read_text()
    assert "## What a listener would notice" in text
    assert "| median loudness difference, generated − real (dB) | -6.0 | 0.0 | −∞ |" in text
    # Per family: the loudness and silence columns, real beside generated.
    assert "| flute | 3 | " in text and "silence's L1" in text and "| -6.0 | 6.0 | 0 | 0% |" in text
    saved = json.loads(paths["json"].read_text())["summary"]["overall"]
    for key in ("median_rms_db", "median_rms_db_real", "median_rms_db_diff", "median_abs_rms_db_diff",
                "spectral_l1_silence", "spectral_l1_vs_silence", "num_near_silent", "near_silent_share"):
        assert saved[key] == pytest.approx(s[key]), key
    header = paths["notes"].read_text().splitlines()[0].split(",")
    assert {"rms_db", "rms_db_real", "rms_db_diff", "spectral_l1_silence"} <= set(header)


def test_log_evaluation_logs_the_listener_metrics(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    real = np.stack([harmonic(60), harmonic(64, seed=1)])
    notes = _level_notes(np.stack([0.5 * real[0], np.zeros_like(real[1])]), real, [60, 64])
    report = {"model": "m.pt", "dataset": "ds", "split": "test", "num_notes": 2, "summary": ev.summarize(notes)}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = ev.log_evaluation(report, ev.write_report(report, tmp_path / "rep"), uri, "eval-test")
    metrics = mlflow.MlflowClient(uri).get_run(run_id).data.metrics
    assert metrics["test_num_near_silent"] == 1 and metrics["test_near_silent_share"] == 0.5
    overall = report["summary"]["overall"]
    for key in ("median_rms_db", "median_rms_db_real", "median_rms_db_diff", "median_abs_rms_db_diff",
                "spectral_l1_silence", "spectral_l1_vs_silence"):
        assert metrics[f"test_{key}"] == pytest.approx(overall[key]), key


def test_time_to_quality_counts_a_quiet_note_in_tune_only_once_it_is_audible(capsys):
    """A model near-silent early in its sequence phase still tracks in tune: the benchmark's
    minutes to a share in tune must wait until those notes are also above -60 dBFS."""
    import argparse

    from sing_ray.commands.bench_quality import print_curve

    notes = {"cents": np.array([3.0, -10.0, np.nan, 80.0]), "rms_db": np.array([-75.0, -30.0, -25.0, -20.0])}
    assert ev.audible_in_tune(notes) == 0.25         # the -75 dBFS note is in tune but near-silent
    point = {"median_rms_db_diff": 0.0, "spectral_l1_vs_silence": 0.5, "num_near_silent": 0, "num_notes": 4}
    rows = [{**point, "phase": "sequence", "epoch": 10, "minutes": 4.5, "pitch_accuracy": 1.0,
             "audible_in_tune": 0.0, "num_near_silent": 4},
            {**point, "phase": "sequence", "epoch": 20, "minutes": 7.5, "pitch_accuracy": 1.0,
             "audible_in_tune": 0.75},
            {**point, "phase": "finetune", "epoch": 10, "minutes": 9.0, "pitch_accuracy": 1.0,
             "audible_in_tune": 1.0}]
    print_curve(rows, [0.5, 0.9], argparse.Namespace(split="test", dataset="ds"))
    out = capsys.readouterr().out
    assert "| sequence | 10 | 4.5 | 100 % | 0 % |" in out
    assert "50 % in tune: after 4.5 min of training (sequence epoch 10)" in out
    assert "50 % in tune and audible: after 7.5 min of training (sequence epoch 20)" in out
    assert "90 % in tune and audible: after 9.0 min of training (finetune epoch 10)" in out


def test_timbre_columns_per_note_and_their_medians():
    real = np.stack([harmonic(60), harmonic(64, seed=1)])
    m = ev.note_metrics(real, real, [60, 64], with_pitch=False, with_reference_pitch=False, with_embedding=False)
    for key in ev.TIMBRE_METRICS:
        assert np.all(m[key] == 0.0), key
        assert np.all(m[f"{key}_silence"] > 10.0), key          # silence is far from any note
    notes = _level_notes(np.stack([real[0] * 10 ** (-3 / 20), np.zeros_like(real[1])]), real, [60, 64])
    s = ev.summarize_group(notes)
    assert s["median_lts_db"] == pytest.approx(float(np.median(notes["lts_db"])))
    assert s["median_lts_db_silence"] == pytest.approx(float(np.median(notes["lts_db_silence"])))
    # The silent note scores exactly what silence scores.
    assert notes["lts_db"][1] == notes["lts_db_silence"][1]
    assert notes["envelope_db"][1] == notes["envelope_db_silence"][1]


def _nearest_key_notes():
    """Three real notes, the model at half scale; the nearest keys of two of them, none for the third."""
    real = np.stack([harmonic(60), harmonic(64, seed=1), harmonic(67, seed=2)])
    names = ["flute_synthetic_001-060-127", "flute_synthetic_001-064-127", "guitar_acoustic_000-067-127"]
    keys = ev.NearestKeys(plan={names[0]: "flute_synthetic_001-059-127", names[1]: "flute_synthetic_001-066-127"},
                          audio={"flute_synthetic_001-059-127": harmonic(59, seed=5),
                                 "flute_synthetic_001-066-127": harmonic(66, seed=6)},
                          pitch={"flute_synthetic_001-059-127": 59, "flute_synthetic_001-066-127": 66})
    notes = _level_notes(0.5 * real, real, [60, 64, 67])
    notes["note_str"] = np.array(names)
    notes["instrument_family_str"] = np.array(["flute", "flute", "guitar"])
    notes.update(ev.nearest_key_metrics(real, names, [60, 64, 67], keys, lts_db=notes["lts_db"],
                                        with_embedding=False))
    return notes


def test_nearest_key_is_scored_with_the_same_metrics_and_missing_ones_are_counted():
    notes = _nearest_key_notes()
    assert list(notes["nk_note_str"]) == ["flute_synthetic_001-059-127", "flute_synthetic_001-066-127", ""]
    assert notes["nk_semitones"][:2].tolist() == [1.0, -2.0] and np.isnan(notes["nk_semitones"][2])
    # A harmonic note stretched a semitone or two: the same partials at about the same level, in
    # tune, nearer than the model's 6 dB (its hold shortens by 6 and 11 %: a few dB of lts).
    assert np.all(notes["nk_lts_db"][:2] < 4.0) and np.all(notes["nk_lts_db"][:2] < notes["lts_db"][:2])
    assert np.all(np.abs(notes["nk_rms_db_diff"][:2]) < 1.0)
    assert np.all(np.abs(notes["nk_cents"][:2]) <= 5)
    # No source: NaN, never a made-up figure.
    for key in ("nk_lts_db", "nk_spectral_l1", "nk_cents", "closer_than_nearest_key"):
        assert np.isnan(notes[key][2]), key
    # The half-scale model is 6 dB off everywhere: the nearest key is closer on both notes.
    assert notes["closer_than_nearest_key"][:2].tolist() == [0.0, 0.0]
    s = ev.summarize(notes)["overall"]
    assert s["num_notes"] == 3 and s["nk_num_notes"] == 2 and s["num_nearest_key_missing"] == 1
    assert s["nk_median_lts_db"] == pytest.approx(float(np.median(notes["nk_lts_db"][:2])))
    assert s["nk_pitch_accuracy"] == 1.0 and s["closer_than_nearest_key_share"] == 0.0
    assert s["nk_spectral_l1_vs_silence"] < s["spectral_l1_vs_silence"] < 1
    # The real notes' and silence's figures are the model's, not repeated for the nearest key.
    assert "nk_median_rms_db_real" not in s and "nk_median_lts_db_silence" not in s
    table = ev.listener_table(s)
    assert table.splitlines()[0] == ("| 3 notes | model | real notes | nearest key (sampler) "
                                     "| silence (all-zero output) |")
    assert "| in tune (f0 within 50 cents) | 100.0% | 100.0% | 100.0% | 0.0% |" in table
    assert (f"| median long-term spectrum distance, lts_db (dB) | {s['median_lts_db']:.1f} | 0.0 | "
            f"{s['nk_median_lts_db']:.1f} | {s['median_lts_db_silence']:.1f} |") in table
    assert "| closer to the real note than the nearest key (lts_db) | 0 of 2 (0%) | – | – | – |" in table
    verdict = " ".join(ev.listener_verdict(s))
    assert "The model is closer than the nearest key on 0 of 2 notes (0%)." in verdict
    assert "1 of 3 notes have no nearest key" in verdict


def test_report_sets_held_out_beside_training_notes(tmp_path, monkeypatch):
    import mlflow

    notes = _nearest_key_notes()
    train = {k: v[:2] for k, v in notes.items()}
    report = {"model": "m.pt", "dataset": "ds", "split": "test", "num_notes": 3, "summary": ev.summarize(notes),
              "nearest_key": ev.nearest_key_report(notes),
              "train_notes": {"num_notes": 2, "summary": ev.summarize(train), "nearest_key": ev.nearest_key_report(train)}}
    assert report["nearest_key"]["missing"] == ["guitar_acoustic_000-067-127"]
    paths = ev.write_report(report, tmp_path / "rep", notes, train_notes=train)
    text = paths["markdown"].read_text()
    assert "## Held-out and training notes" in text and "| 2 training notes | model | real notes |" in text
    assert "| held-out (test) | 3 |" in text and "| training notes | 2 |" in text
    assert "| flute, held-out (test) | 2 |" in text and "| guitar, training notes |" not in text
    assert "Notes without a nearest key: `guitar_acoustic_000-067-127`." in text
    assert "nearest key lts dB" in text and "floored 80 dB under the real note's loudest band" in text
    header = paths["notes"].read_text().splitlines()[0].split(",")
    assert {"lts_db", "nk_lts_db", "nk_note_str", "closer_than_nearest_key", "lts_db_silence"} <= set(header)
    assert paths["train_notes"].read_text().count("\n") == 3
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    metrics = mlflow.MlflowClient(uri).get_run(ev.log_evaluation(report, paths, uri, "eval-test")).data.metrics
    for key in ("median_lts_db", "nk_median_lts_db", "closer_than_nearest_key_share", "num_nearest_key_missing"):
        assert metrics[f"test_{key}"] == pytest.approx(report["summary"]["overall"][key]), key
        assert metrics[f"train_{key}"] == pytest.approx(report["train_notes"]["summary"]["overall"][key]), key


def test_time_to_timbre_is_the_first_point_at_or_under_each_median_lts(capsys):
    import argparse

    from sing_ray.commands.bench_quality import print_curve

    point = {"median_rms_db_diff": 0.0, "spectral_l1_vs_silence": 0.5, "num_near_silent": 0, "num_notes": 4,
             "pitch_accuracy": 1.0, "audible_in_tune": 1.0, "median_lts_loud_db": 3.0, "median_envelope_db": 2.0,
             "median_lts_db_silence": 30.0}
    rows = [{**point, "phase": "sequence", "epoch": 4, "minutes": 2.0, "median_lts_db": 7.5,
             "nk_median_lts_db": 4.2, "nk_median_envelope_db": 3.1, "num_nearest_key_missing": 1},
            {**point, "phase": "sequence", "epoch": 8, "minutes": 4.0, "median_lts_db": 5.0},
            {**point, "phase": "finetune", "epoch": 4, "minutes": 6.5, "median_lts_db": 4.6}]
    print_curve(rows, [0.5], argparse.Namespace(split="test", dataset="ds"), [6, 5, 4.5, 3])
    out = capsys.readouterr().out
    assert "| sequence | 4 | 2.0 | 100 % | 100 % | +0.0 dB | 0.50 | 0 | 7.5 | 3.0 | 2.0 |" in out
    assert "the nearest key (sampler) on these notes: median lts_db 4.2 dB, envelope 3.1 dB (1 notes have none)" in out
    assert "median lts_db 6 dB: after 4.0 min of training (sequence epoch 8)" in out
    assert "median lts_db 5 dB: after 4.0 min of training (sequence epoch 8)" in out     # at or under
    assert "median lts_db 4.5 dB: not reached; best 4.6 dB after 6.5 min (finetune epoch 4)" in out
