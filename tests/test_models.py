import math
from dataclasses import asdict

import pytest
import torch

from sing_ray.config import ConfigError, config_from_dict, load_config
from sing_ray.models.sequence import phase_clock, pitch_waves
from sing_ray.models import (SING, Autoencoder, Decoder, SequenceGenerator, TransposedConvHead, build_autoencoder,
                             build_sequence_generator, build_sing, num_parameters)
from sing_ray.models.heads import Rows


def test_paper_length_arithmetic():
    dec = Decoder(dimension=4, channels=4, kernel_size=1024, stride=256)
    # 64,000 samples padded by 2,304 on each side: 265 frames at 62.5 Hz.
    assert dec.embedding_length(64000 + 2 * 2304) == 265
    assert dec.wav_length(265) == 68608
    for frames in (1, 2, 100, 265):
        assert dec.embedding_length(dec.wav_length(frames)) == frames
    with pytest.raises(ValueError, match="multiple of stride"):
        dec.embedding_length(64001)
    assert load_config("paper").num_frames == 265


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_shapes_through_every_part(preset):
    cfg = load_config(preset)
    m = cfg.model
    ae = build_autoencoder(m)
    wav = torch.randn(2, m.wav_length) * 0.1
    emb = ae.encode(wav, torch.tensor([60, 61]))
    assert emb.shape == (2, m.dimension, cfg.num_frames)
    assert ae(wav, torch.tensor([60, 61])).shape == wav.shape
    seq = build_sequence_generator(m, num_instruments=3)
    idx = torch.tensor([0, 2])
    frames = seq(idx, torch.tensor([60, 61]), torch.tensor([0, 4]))
    assert frames.shape == emb.shape
    sing = build_sing(m, num_instruments=3)
    assert sing(idx, torch.tensor([60, 61]), torch.tensor([0, 4])).shape == (2, m.wav_length)


def test_paper_preset_parameter_count():
    m = load_config("paper").model
    with torch.device("meta"):
        sing = build_sing(m, num_instruments=1006)
    lstm_and_decoder = num_parameters(sing.sequence.lstm) + num_parameters(sing.sequence.output) \
        + num_parameters(sing.decoder)
    # The paper: 243 MB; LSTM + decoder ~ 63.7 M parameters (docs/architecture.md#the-model-what-each-preset-runs).
    assert 63.6e6 < lstm_and_decoder < 63.8e6
    assert 242 < num_parameters(sing) * 4 / 2**20 < 244.5


def test_time_dim_zero_removes_time_table():
    with_time = SequenceGenerator(num_instruments=2, dimension=8, hidden_size=8, num_layers=1, num_frames=10)
    without = SequenceGenerator(num_instruments=2, dimension=8, hidden_size=8, num_layers=1, num_frames=10,
                                time_dim=0)
    assert with_time.time is not None and without.time is None
    assert without.lstm.input_size == with_time.lstm.input_size - 4
    i = torch.tensor([1])
    assert without(i, torch.tensor([3]), torch.tensor([2])).shape == (1, 8, 10)


@pytest.mark.parametrize("phase_harmonics", [0, 3])
def test_chunked_generation_equals_whole_note(phase_harmonics):
    """Truncated BPTT runs the LSTM in chunks carrying the state: same frames as one pass."""
    torch.manual_seed(0)
    seq = SequenceGenerator(num_instruments=3, dimension=6, hidden_size=12, num_layers=2, num_frames=40,
                            phase_harmonics=phase_harmonics)
    args = (torch.tensor([0, 2]), torch.tensor([40, 90]), torch.tensor([1, 3]))
    whole = seq(*args)
    chunks, hidden = [], None
    for start in range(0, 40, 16):
        out, hidden = seq(*args, start=start, length=min(16, 40 - start), hidden=hidden, return_hidden=True)
        chunks.append(out)
    torch.testing.assert_close(torch.cat(chunks, dim=-1), whole)
    with pytest.raises(ValueError, match="outside"):
        seq(*args, start=30, length=20)


def test_windowed_kernels_taper_to_zero():
    """The squared Hann window makes the transposed conv's window and the learnt encoder's
    kernel start at zero; the transposed conv's bias is added once per sample."""
    ae = Autoencoder(dimension=4, channels=8, kernel_size=1024, stride=256, wav_length=4096, pad=0)
    head = ae.decoder.synthesis
    assert isinstance(head, TransposedConvHead)
    weights = head.gemm_weights(lambda t: t)
    with torch.no_grad():
        out = head(torch.relu(torch.randn(1, 1, 8)), weights, Rows(None, 0, 0))
        assert out.shape == (1, 1, 1024) and float(out[0, 0, 0]) == 0.0 and float(out[0, 0, 1]) != 0.0
        torch.testing.assert_close(head.constant(weights), head.bias)
        assert float((ae.encoder.analysis.weight * ae.encoder.analysis.window)[..., 0].abs().max()) == 0.0


def test_sing_span_is_that_window_of_the_whole_note():
    """Training on a window of a note gives exactly those samples of the whole note, gradients included."""
    torch.manual_seed(0)
    model = SING(num_instruments=3, dimension=8, channels=16, hidden_size=8, num_layers=1)
    args = (torch.tensor([0, 2]), torch.tensor([60, 62]), torch.tensor([1, 3]))
    whole = model(*args)
    window = model(*args, span=(1000, 1000 + 16128))
    torch.testing.assert_close(window, whole[:, 1000:1000 + 16128])
    window.square().sum().backward()
    assert model.sequence.lstm.weight_ih_l0.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="outside"):
        model(*args, span=(60000, 64001))


def test_phase_clock_turns_each_partial_by_its_frequency():
    """Partial k of A4 turns k * 440 * 256 / 16000 cycles a frame; partials above 8 kHz are left out."""
    clock = phase_clock(torch.tensor([69, 105]), start=10, length=3, harmonics=2, frame_hop=256 / 16000)
    assert clock.shape == (2, 3, 4)
    for k in (1, 2):
        angle = 2 * math.pi * k * 440 * 256 / 16000 * torch.arange(10, 13, dtype=torch.float64)
        torch.testing.assert_close(clock[0, :, k - 1], torch.cos(angle).float(), atol=1e-5, rtol=0)
        torch.testing.assert_close(clock[0, :, 2 + k - 1], torch.sin(angle).float(), atol=1e-5, rtol=0)
    # MIDI 105 is 3520 Hz: its second partial (7040 Hz) sounds, its third would not.
    assert clock[1, :, [1, 3]].abs().sum() > 0
    high = phase_clock(torch.tensor([105]), 0, 3, harmonics=3, frame_hop=256 / 16000)
    assert torch.all(high[0, :, [2, 5]] == 0)



def test_phase_clock_of_a_window_continues_the_whole_notes():
    """A window cut at any sample (a fractional frame, per note) reads the clock the whole note reads there."""
    pitch = torch.tensor([61, 93])
    whole = phase_clock(pitch, start=0, length=40, harmonics=4, frame_hop=256 / 16000)
    torch.testing.assert_close(phase_clock(pitch, 7, 10, 4, 256 / 16000), whole[:, 7:17])
    half = phase_clock(pitch, torch.tensor([2.5, 30.0]), 5, 4, 256 / 16000)
    torch.testing.assert_close(half[1], whole[1, 30:35], atol=1e-5, rtol=0)
    # Half a frame is 128 samples: the fundamental of MIDI 61 (277.2 Hz) has turned 2.2176 cycles.
    f0 = 440 * 2 ** ((61 - 69) / 12)
    angle = 2 * math.pi * f0 * 256 / 16000 * (2.5 + torch.arange(5, dtype=torch.float64))
    torch.testing.assert_close(half[0, :, 0], torch.cos(angle).float(), atol=1e-5, rtol=0)


def test_pitch_waves_are_smooth_in_pitch_and_feed_the_lstm_beside_the_table():
    """Neighbouring pitches get nearby features, an octave turns the 24-semitone pair by half."""
    waves = pitch_waves(torch.arange(128), 3)
    assert waves.shape == (128, 6)
    step = (waves[1:] - waves[:-1]).norm(dim=-1)
    assert step.max() < 0.35 and step.min() > 0.1
    torch.testing.assert_close(waves[72, [0, 3]], -waves[60, [0, 3]], atol=1e-5, rtol=0)
    cfg = load_config("tiny", overrides=["model.pitch_features=3"])
    seq = build_sequence_generator(cfg.model, num_instruments=2)
    plain = build_sequence_generator(load_config("tiny").model, num_instruments=2)
    assert seq.lstm.input_size == plain.lstm.input_size + 6
    assert seq.kwargs["pitch_features"] == 3 and "pitch_features" not in plain.kwargs
    sing = build_sing(cfg.model, num_instruments=2)
    assert SING(**sing.kwargs).sequence.lstm.input_size == seq.lstm.input_size
    with pytest.raises(ConfigError, match="model.pitch_features"):
        load_config("tiny", overrides=["model.pitch_features=-1"])


def test_lstm_dropout_acts_in_training_only_and_is_recorded_when_on():
    cfg = load_config("small", overrides=["model.lstm_dropout=0.5"])
    sing = build_sing(cfg.model, num_instruments=2)
    assert sing.sequence.lstm.dropout == 0.5 and sing.kwargs["lstm_dropout"] == 0.5
    assert "lstm_dropout" not in build_sing(load_config("small").model, num_instruments=2).kwargs
    assert SING(**sing.kwargs).sequence.lstm.dropout == 0.5
    args = torch.tensor([0, 1]), torch.tensor([48, 60]), torch.tensor([2, 3])
    torch.manual_seed(0)
    train_a, train_b = sing.sequence(*args), sing.sequence(*args)
    assert not torch.equal(train_a, train_b)
    sing.eval()
    torch.testing.assert_close(sing.sequence(*args), sing.sequence(*args))
    with pytest.raises(ConfigError, match="num_layers >= 2"):
        load_config("quick", overrides=["model.lstm_dropout=0.2"])
    with pytest.raises(ConfigError, match=r"lstm_dropout must be in \[0, 1\)"):
        load_config("small", overrides=["model.lstm_dropout=1"])


def test_a_clocked_decoder_needs_the_pitch_and_its_windows_match_the_whole_note():
    torch.manual_seed(0)
    model = SING(num_instruments=3, dimension=8, channels=16, hidden_size=8, num_layers=1, clock_harmonics=4)
    assert model.decoder.body[0].in_channels == 8 + 2 * 4
    args = (torch.tensor([0, 2]), torch.tensor([60, 62]), torch.tensor([1, 3]))
    whole = model(*args)
    torch.testing.assert_close(model.synthesize(*args), whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model(*args, span=(1000, 1000 + 16128)), whole[:, 1000:1000 + 16128],
                               rtol=1e-5, atol=1e-6)
    # Another pitch is another clock: the same frames make another waveform.
    frames = torch.randn(2, 8, model.num_frames)
    assert not torch.allclose(model.decoder(frames, args[1]), model.decoder(frames, args[1] + 1))
    with pytest.raises(ValueError, match="MIDI pitches"):
        model.decoder(frames)


def test_a_clocked_autoencoder_reads_each_windows_clock_at_its_offset():
    """The decoder of a window at sample offset o reads the clock from note frame o / 256 on."""
    torch.manual_seed(0)
    ae = Autoencoder(dimension=4, channels=8, wav_length=16128, pad=2304, clock_harmonics=3)
    wav, pitch = 0.1 * torch.randn(2, 16128), torch.tensor([57, 70])
    assert ae(wav, pitch).shape == (2, 16128)
    embedding = ae.encode(wav[:, :4096])
    offsets = torch.tensor([512, 1000])
    seen = []
    ae.decoder.with_clock = lambda frames, p, start: seen.append(start) or torch.cat(
        [frames, torch.zeros(*frames.shape[:2], 6)], dim=-1)
    ae.decode(embedding, pitch, offsets)
    torch.testing.assert_close(seen[0], torch.tensor([2.0, 1000 / 256], dtype=torch.float64))


NOTES = (torch.tensor([0, 2]), torch.tensor([57, 62]), torch.tensor([1, 3]))


def _whole_note_by_every_path(model: SING) -> tuple[torch.Tensor, object]:
    """The whole notes of NOTES by forward, checked against the GEMM path, a window of it and
    its bfloat16 weights; returns them and those weights."""
    whole = model(*NOTES)
    torch.testing.assert_close(model.synthesize(*NOTES), whole, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(model(*NOTES, span=(1000, 1000 + 16128)), whole[:, 1000:1000 + 16128],
                               rtol=1e-4, atol=1e-6)
    bf16 = model.decoder.gemm_weights(torch.bfloat16)
    torch.testing.assert_close(model.synthesize(*NOTES, weights=bf16), whole, rtol=0.05, atol=2e-3)
    return whole, bf16


@pytest.mark.parametrize("heads", [("transposed_conv", "partials"), ("partials",)])
def test_a_decoder_with_partials_plays_them_in_tune_and_its_windows_match_the_whole_note(heads):
    torch.manual_seed(0)
    model = SING(num_instruments=3, dimension=8, channels=16, hidden_size=8, num_layers=1, partials=6, heads=heads)
    if "transposed_conv" in heads:
        # The transposed conv starts silent: at first the note is its partials alone.
        assert float(model.decoder.synthesis.weight.abs().max()) == 0.0
    else:
        assert model.decoder.synthesis is None and set(model.decoder.gemm_weights().heads) == {"partials"}
    whole, bf16 = _whole_note_by_every_path(model)
    assert bf16.heads["partials"][0].dtype == torch.bfloat16
    # Its spectrum peaks at the MIDI pitch's partials: A3 is 220 Hz, 880 samples per 4 periods.
    spectrum = torch.fft.rfft(whole[0, 16000:48000]).abs()[1:]          # without DC (the bias)
    peaks = (torch.topk(spectrum, 6).indices.sort().values + 1).double() * 16000 / 32000
    torch.testing.assert_close(peaks, 220.0 * torch.arange(1, 7, dtype=torch.float64), atol=1.0, rtol=0)
    with pytest.raises(ValueError, match="MIDI pitches"):
        model.decoder(torch.randn(2, 8, model.num_frames))


def test_partial_windows_overlap_into_steady_sines():
    """Equal amplitudes in every frame overlap-add into a sine of that amplitude, whatever the offset."""
    from sing_ray.models.partials import partial_windows
    decoder = Decoder(dimension=4, channels=8, heads=("transposed_conv", "partials"), partials=3)
    amplitudes = torch.zeros(1, 40, 3)
    amplitudes[..., 1] = 0.25                                   # the 2nd partial only
    for first in (0, 768, 1000.0):
        wav = decoder._overlap_add(partial_windows(amplitudes, torch.tensor([69]), first))
        t = first + torch.arange(wav.shape[-1], dtype=torch.float64)
        expected = 0.25 * torch.sin(2 * math.pi * ((880.0 / 16000 * t) % 1.0)).float()
        # Away from the ends, where fewer than 4 windows overlap.
        torch.testing.assert_close(wav[0, 1024:-1024], expected[1024:-1024], atol=1e-5, rtol=0)
    # Partials at or above 8 kHz are left out: MIDI 120 (8.4 kHz) is silent.
    assert float(partial_windows(amplitudes + 1, torch.tensor([120]), 0).abs().max()) == 0.0


def test_a_decoder_with_noise_renders_the_same_by_either_path_and_starts_under_its_partials():
    torch.manual_seed(0)
    model = SING(num_instruments=3, dimension=8, channels=16, hidden_size=8, num_layers=1, partials=6,
                 heads=("partials", "noise"), noise_bands=8)
    whole, bf16 = _whole_note_by_every_path(model)
    assert bf16.heads["noise"][0].dtype == torch.bfloat16
    args = NOTES
    # A note renders the same alone or in a batch, and again: the noise's phases are fixed.
    torch.testing.assert_close(model(*(a[1:] for a in args))[0], whole[1], rtol=1e-5, atol=1e-7)
    # At first the noise lies some 30 dB under the partials, so it cannot drown them.
    without = SING(num_instruments=3, dimension=8, channels=16, hidden_size=8, num_layers=1, partials=6,
                   heads=("partials",))
    without.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("decoder.noise")})
    noise = whole - without(*args)
    ratio_db = 20 * torch.log10(noise.pow(2).mean().sqrt() / without(*args).pow(2).mean().sqrt())
    assert float(ratio_db) < -20, float(ratio_db)
    assert float(noise.abs().max()) > 0


def test_noise_bands_shape_the_noise_spectrum():
    """Noise in one band puts its power around that band's centre, at the level asked."""
    from sing_ray.models.noise import noise_windows
    decoder = Decoder(dimension=4, channels=8, heads=("partials", "noise"), partials=3, noise_bands=9)
    noise = decoder.noise
    levels = torch.zeros(1, 200, 9)
    levels[..., 6] = 0.1
    # The bands are spaced evenly in mel: band 6 of 9 spans its two neighbours' centres.
    row = noise.bands_to_bins[6]
    bin_hz = torch.linspace(0, 8000, len(row))
    low, high = float(bin_hz[row > 0].min()) - 16, float(bin_hz[row > 0].max()) + 16
    assert 3000 < float(bin_hz[row.argmax()]) < 5000 and high - low < 4000
    wav = decoder._overlap_add(noise_windows(levels, 0, noise.phases, noise.bands_to_bins))
    middle = wav[0, 2048:-2048].double()
    power = torch.fft.rfft(middle * torch.hann_window(len(middle), dtype=torch.float64)).abs() ** 2
    hz = torch.fft.rfftfreq(len(middle), 1 / 16000)
    inside = power[(hz > low) & (hz < high)].sum()
    assert float(inside / power.sum()) > 0.95
    # Its RMS is about 0.7 x the RMS of the levels over the FFT bins (the windows' overlap).
    per_bin = levels[0, 0] @ noise.bands_to_bins
    expected = 0.7 * float(per_bin.pow(2).mean().sqrt())
    assert abs(float(middle.pow(2).mean().sqrt()) / expected - 1) < 0.1
    # Two frames apart, the noise is not the same noise.
    pieces = noise_windows(levels[:, :2], 0, noise.phases, noise.bands_to_bins)
    assert float(torch.corrcoef(pieces[0])[0, 1].abs()) < 0.2
    with pytest.raises(ValueError, match="noise_bands must be 2 or more"):
        Decoder(dimension=4, channels=8, heads=("transposed_conv", "noise"), noise_bands=1)
    with pytest.raises(ConfigError, match="noise_bands"):
        load_config("tiny", overrides=["model.noise_bands=1"])


def test_partial_magnitudes_read_each_partials_amplitude_whatever_its_phase():
    from sing_ray.models.partials import partial_magnitudes
    t = torch.arange(1024 + 39 * 256, dtype=torch.float64)
    f0 = 220.0                                                  # MIDI 57
    wav = (0.3 * torch.sin(2 * math.pi * 3 * f0 * t / 16000 + 0.7)
           + 0.05 * torch.cos(2 * math.pi * 5 * f0 * t / 16000)).float()[None]
    mags = partial_magnitudes(wav, torch.tensor([57]), 8)
    assert mags.shape == (1, 8, 40)
    torch.testing.assert_close(mags[0, 2], torch.full((40,), 0.3), atol=2e-3, rtol=0)
    torch.testing.assert_close(mags[0, 4], torch.full((40,), 0.05), atol=2e-3, rtol=0)
    assert float(mags[0, [0, 1, 3, 5, 6, 7]].max()) < 2e-3
    # Partials at or above Nyquist read nothing: the 40th of MIDI 100 is at 105 kHz.
    assert float(partial_magnitudes(wav, torch.tensor([100]), 40)[0, 3:].max()) == 0.0


HARMONIC_16 = ["model.dimension=16", "model.frames=harmonic", "model.heads=partials", "model.partials=16",
               "model.decoder_harmonics=0"]


def test_the_harmonic_encoder_needs_the_pitch_and_a_learnt_one_measures_no_partials():
    cfg = load_config("tiny", overrides=HARMONIC_16)
    ae = build_autoencoder(cfg.model)
    assert (ae.kwargs["frames"], ae.kwargs["heads"], ae.kwargs["partials"]) == ("harmonic", ("partials",), 16)
    wav, pitch = 0.1 * torch.randn(2, cfg.model.wav_length), torch.tensor([48, 60])
    embedding = ae.encode(wav, pitch)
    assert embedding.shape == (2, cfg.model.dimension, ae.num_frames)
    assert ae(wav, pitch).shape == wav.shape
    with pytest.raises(ValueError, match="MIDI pitches"):
        ae.encode(wav)
    # A checkpoint's kwargs rebuild the same model.
    assert Autoencoder(**ae.kwargs).encoder.partials == 16
    # An encoder that measures partials to write learnt frames (the old model.analysis_partials
    # without model.harmonic_frames) ran in no preset and is no longer built.
    with pytest.raises(ConfigError, match="analysis_partials"):
        load_config("tiny", overrides=["model.analysis_partials=16"])
    stored = asdict(load_config("tiny"))                                      # as the old code stored it
    del stored["model"]["frames"], stored["model"]["heads"]
    stored["model"].update(partials=16, analysis_partials=16, harmonic_frames=False, conv_synthesis=True)
    with pytest.raises(ConfigError, match="no longer built"):
        config_from_dict(stored)


def test_harmonic_frames_start_as_the_notes_measured_partials_and_play_them_back():
    """Untrained, the autoencoder with harmonic frames already reconstructs a harmonic note."""
    from sing_ray.models.partials import partial_magnitudes
    cfg = load_config("tiny", overrides=HARMONIC_16)
    ae = build_autoencoder(cfg.model)
    t = torch.arange(cfg.model.wav_length, dtype=torch.float64) / 16000
    amplitude = torch.tensor([0.2, 0.0, 0.08, 0.0, 0.03], dtype=torch.float64)   # odd partials, as a square
    envelope = torch.exp(-t)                                                      # decaying
    wav = sum(a * envelope * torch.sin(2 * math.pi * (k + 1) * 220.0 * t) for k, a in enumerate(amplitude))
    wav, pitch = wav.float()[None], torch.tensor([57])
    with torch.no_grad():
        out = ae(wav, pitch)
    real, made = (partial_magnitudes(x[:, 16000:48000], pitch, 6)[0].mean(-1) for x in (wav, out))
    for k in (0, 2, 4):
        assert abs(20 * math.log10(float(made[k] / real[k]))) < 0.5, k
    assert float(made[1]) < 1e-3 and float(made[3]) < 1e-3          # the even partials stay out
    # The frames are the log magnitudes over 4, and the SING with them renders by either path alike.
    centre = (100 * 256 + 512 - cfg.model.pad) / 16000                 # frame 100's middle, in s
    assert float(ae.encode(wav, pitch)[0, 0, 100]) == pytest.approx(math.log(0.2 * math.exp(-centre)) / 4, abs=0.01)
    model = SING(num_instruments=3, dimension=16, channels=16, hidden_size=8, num_layers=1, partials=16,
                 heads=("partials",), frames="harmonic")
    _whole_note_by_every_path(model)
    with pytest.raises(ConfigError, match="harmonic frames .* without the transposed conv"):
        load_config("tiny", overrides=["model.frames=harmonic"])
    with pytest.raises(ConfigError, match=r"model.dimension \(32\) must equal model.partials \(16\)"):
        load_config("tiny", overrides=["model.frames=harmonic", "model.heads=partials", "model.partials=16"])


def test_sub_octaves_measure_and_play_the_partials_under_the_pitch_that_an_organs_16_foot_stop_sounds():
    """An organ note with a 16-foot stop: partials at 0.5, 1 and 1.5 times its MIDI pitch."""
    from sing_ray.models.partials import partial_magnitudes
    pitch = torch.tensor([30])                                   # 46 Hz: the half-multiples lie 23 Hz apart,
    f0 = 440 * 2 ** ((30 - 69) / 12)                             # inside the window's main lobe
    t = torch.arange(16000 * 2, dtype=torch.float64) / 16000
    parts = {1: 0.2, 2: 0.1, 3: 0.05}                            # partial k of the half grid, at k * f0 / 2
    wav = sum(a * torch.sin(2 * math.pi * k * f0 / 2 * t + 0.3 * k) for k, a in parts.items()).float()[None]
    wav = wav[:, :1024 + 100 * 256]
    mags = partial_magnitudes(wav, pitch, 8, sub_octaves=1)[0, :, 2:-2]
    for k, a in parts.items():
        torch.testing.assert_close(mags[k - 1], torch.full_like(mags[k - 1], a), atol=3e-3, rtol=0)
    assert float(mags[3:].max()) < 3e-3
    # Correlating with each partial alone, on the same grid, would read the neighbours' leakage as partials.
    assert float(partial_magnitudes(wav, pitch - 12, 8)[0, 3, 2:-2].min()) > 0.015
    # Untrained, an autoencoder with the option plays the stop back; without it, nothing under the pitch.
    made = {}
    for sub in (0, 1):
        cfg = load_config("tiny", overrides=[*HARMONIC_16, f"model.sub_octaves={sub}", "model.wav_length=16128",
                                             "model.pad=0"])
        ae = build_autoencoder(cfg.model)
        assert ae.kwargs["sub_octaves"] == sub
        again = Autoencoder(**ae.kwargs)                                          # a checkpoint rebuilds it
        assert again.decoder.partials.sub_octaves == again.encoder.sub_octaves == sub
        with torch.no_grad():
            out = ae(wav[:, :16128], pitch)
        made[sub] = partial_magnitudes(out, pitch, 8, sub_octaves=1)[0, :, 8:-8].mean(-1)
        # Where the note has ended, the partials the frames call silent play nothing (with the
        # option), not the encoder's floor, whose sub-octave a pitch tracker would follow.
        ended = wav[:, :16128].clone()
        ended[:, 6000:] = 0
        with torch.no_grad():
            tail = ae(ended, pitch)[0, 6000 + 2048:]
        assert float(tail.abs().max()) < (1e-8 if sub else 1.0)
        if not sub:
            assert float(tail.abs().max()) > 1e-5
    for k, a in parts.items():
        assert abs(20 * math.log10(float(made[1][k - 1]) / a)) < 0.5, k
    # (what is read there is the leakage of its partials at multiples of f0: 20 dB down)
    assert float(made[0][0]) < 0.25 * parts[1]
    model = SING(num_instruments=3, dimension=16, channels=16, hidden_size=8, num_layers=1, partials=16,
                 heads=("partials",), frames="harmonic", sub_octaves=1)
    _whole_note_by_every_path(model)
    with pytest.raises(ConfigError, match="model.partials > 0"):
        load_config("tiny", overrides=["model.sub_octaves=1"])
    with pytest.raises(ConfigError, match="sub_octaves must be >= 0"):
        load_config("tiny", overrides=["model.sub_octaves=-1"])


def test_heads_are_chosen_by_name_and_the_rules_between_them_are_the_configs():
    """The decoder plays the heads it is given; what does not fit is refused by the same rule
    (config.check_parts) in the config and in the constructors."""
    with pytest.raises(ValueError, match="would play nothing"):
        Decoder(dimension=4, channels=8, heads=())
    with pytest.raises(ValueError, match="model.partials > 0"):
        Decoder(dimension=4, channels=8, heads=("partials",))
    with pytest.raises(ConfigError, match="model.partials > 0"):
        load_config("tiny", overrides=["model.heads=partials"])
    with pytest.raises(ConfigError, match="did you mean partials"):
        load_config("tiny", overrides=["model.heads=partial"])
    with pytest.raises(ConfigError, match="does not name"):
        load_config("tiny", overrides=["model.heads=transposed_conv", "model.noise_bands=8",
                                       "model.heads=transposed_conv"])
    cfg = load_config("tiny", overrides=["model.heads=partials", "model.partials=8"])
    decoder = build_autoencoder(cfg.model).decoder
    assert decoder.synthesis is None and [name for name, _ in decoder.heads()] == ["partials"]
    # In any order, the heads are built and summed in one: a seed builds the same model.
    assert load_config("tiny", overrides=["model.heads=noise,transposed_conv", "model.noise_bands=4"]).model.heads \
        == ("transposed_conv", "noise")


@pytest.mark.parametrize("preset", ["tiny", "quick", "small"])
def test_an_autoencoders_recorded_kwargs_are_known_from_its_config(preset):
    """What a run that takes another run's autoencoder compares: the kwargs its checkpoint
    records, known from the config alone (options that are off are not named)."""
    from sing_ray.models.sing import autoencoder_kwargs
    m = load_config(preset).model
    assert autoencoder_kwargs(m) == build_autoencoder(m).kwargs
