"""The noise synth: what a note holds beside its partials, measured and played back."""
import math

import pytest
import scipy.signal
import torch

from sing_ray.models import Autoencoder
from sing_ray.models.partials import partial_magnitudes
from sing_ray.config import ConfigError, load_config
from sing_ray.models.noise import (NOISE_GAIN, PITCH_BANDS_HIGH, PITCH_BANDS_LOW, band_centres, mel_band_matrix,
                                   mel_to_pitch_bands, noise_phases, noise_windows, pitch_to_mel_bands,
                                   residual_levels)
from sing_ray.timbre import shift_pitch
from sing_ray.timbre import timbre_metrics

SR = 16000


def _overlap_add(pieces: torch.Tensor, stride: int = 256) -> torch.Tensor:
    batch, count, kernel = pieces.shape
    out = pieces.new_zeros(batch, (count - 1) * stride + kernel)
    for j in range(count):
        out[:, j * stride:j * stride + kernel] += pieces[:, j]
    return out


def _harmonic(pitch: int, frames: int = 120, seed: int = 0) -> torch.Tensor:
    """(1, T) a steady tone of 30 partials at random phases, amplitudes 0.3 / k."""
    f0 = 440 * 2 ** ((pitch - 69) / 12)
    t = torch.arange(1024 + (frames - 1) * 256, dtype=torch.float64) / SR
    phases = torch.rand(30, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 * math.pi
    wav = sum(0.3 / k * torch.cos(2 * math.pi * k * f0 * t + phases[k - 1]) for k in range(1, 31) if k * f0 < SR / 2)
    return wav.float()[None]


def test_mel_bands_interpolate_to_a_flat_spectrum_and_rise_in_width():
    matrix = mel_band_matrix(32, 513)
    assert torch.allclose(matrix.sum(0), torch.ones(513), atol=1e-5)
    centres = torch.linspace(0, 8000, 513)[matrix.argmax(-1)]
    widths = centres.diff()
    # Evenly spaced in mel: narrow at the bottom (under 100 Hz apart), wide at the top.
    assert widths[1] < 100 and widths[-1] > 400 and bool((widths[1:] >= widths[:-1] - 16).all())
    # More bands than the window resolves at the bottom: a band without a bin is refused, not
    # left to read NaN.
    with pytest.raises(ValueError, match="without a bin"):
        mel_band_matrix(256, 513)


def test_noise_played_at_a_level_reads_back_that_level():
    """The decoder's noise at level l in a band reads l back (NOISE_GAIN), within 0.5 dB."""
    matrix = mel_band_matrix(32, 513)
    phases = noise_phases(1024, 512, 7)
    levels = torch.full((1, 300, 32), 0.01)
    levels[..., 20:] = 0.001                       # a step of 20 dB in the spectrum
    wav = _overlap_add(noise_windows(levels / NOISE_GAIN, 0, phases, matrix))
    read = residual_levels(wav.unfold(-1, 1024, 256)[:, 8:-8], None, matrix)     # (1, 32, n)
    read_db = 20 * torch.log10(read).mean(-1)[0]
    assert float((read_db[:18] - (-40)).abs().max()) < 0.5
    assert float((read_db[23:] - (-60)).abs().max()) < 0.5
    # White noise of RMS s reads s in every band (the lowest bands, of a few bins each, read
    # their log level's mean a little lower).
    white = torch.randn(1, 80000, generator=torch.Generator().manual_seed(1)) * 0.01
    white_db = 20 * torch.log10(residual_levels(white.unfold(-1, 1024, 256), None, matrix)).mean(-1)[0]
    assert float((white_db + 40).abs().median()) < 0.5
    assert float((white_db + 40).abs().max()) < 2.0


def test_a_steady_tone_leaves_no_residual_and_noise_beside_it_is_measured():
    """The partials re-made at their measured amplitudes and phases take the tone away: what is
    left lies 50 dB or more under it; noise added beside the tone reads its own level."""
    matrix = mel_band_matrix(32, 513)
    for pitch in (40, 60, 84):
        tone = _harmonic(pitch)
        _, frames, remade = partial_magnitudes(tone, torch.tensor([pitch]), 64, remade=True)
        whole = residual_levels(frames, None, matrix)
        left = residual_levels(frames, remade, matrix)
        assert float(20 * torch.log10(left.max() / whole.max())) < -50
    noise = torch.randn(tone.shape, generator=torch.Generator().manual_seed(2)) * 0.003
    _, frames, remade = partial_magnitudes(tone + noise, torch.tensor([84]), 64, remade=True)
    read_db = 20 * torch.log10(residual_levels(frames, remade, matrix)).mean(-1)
    assert float((read_db - 20 * math.log10(0.003)).abs().median()) < 1.0


def test_harmonic_frames_with_noise_play_a_breathy_note_closer_than_partials_alone():
    """Untrained (every correction zero), the autoencoder plays back what its encoder measured:
    with noise bands, a tone over breath noise 20 dB under it comes back within 1 dB in its
    long-term spectrum; the partials alone leave the noise out, 4 dB or more off."""
    pitch = 64
    tone = _harmonic(pitch, frames=262)[:, :64000]
    breath = torch.randn(tone.shape, generator=torch.Generator().manual_seed(3)).double().numpy()
    # Breath: white noise through a gentle low-pass (one pole), 20 dB under the tone.
    lowpassed = torch.from_numpy(scipy.signal.lfilter([0.1], [1.0, -0.9], breath)).float()
    note = tone + lowpassed * (tone.std() / lowpassed.std()) * 10 ** (-20 / 20)
    figures = {}
    for noise_bands in (0, 32):
        model = Autoencoder(dimension=64 + noise_bands, channels=16, rewrite_layers=1, frames="harmonic",
                            heads=("partials", "noise") if noise_bands else ("partials",), partials=64,
                            noise_bands=noise_bands)
        with torch.no_grad():
            out = model(note, torch.tensor([pitch]))
        figures[noise_bands] = float(timbre_metrics(out, note)["lts_db"][0])
    assert figures[32] < 1.0, figures
    assert figures[0] > 4.0, figures


def test_harmonic_frames_with_noise_render_the_same_whole_or_in_windows():
    """A window of the note (what training and the fast path compute: GEMMs over the frames it
    needs) is that window of the whole note, noise included: its phases are fixed per note frame."""
    from sing_ray.models import Decoder

    torch.manual_seed(0)
    decoder = Decoder(dimension=24, channels=16, frames="harmonic", heads=("partials", "noise"), partials=16,
                      noise_bands=8, rewrite_layers=1)
    for p in decoder.parameters():
        torch.nn.init.normal_(p, std=0.05)
    frames = torch.randn(2, 40, 24) * 0.3 - 1.5
    pitch = torch.tensor([60, 67])
    with torch.no_grad():
        whole = decoder(frames.transpose(1, 2), pitch)
        rendered = decoder.synthesize(frames, pitch=pitch)
        window = decoder.synthesize(frames, 3000, 7000, pitch=pitch)
    assert float(whole.abs().max()) > 0.01
    torch.testing.assert_close(rendered, whole, atol=1e-6, rtol=0)
    torch.testing.assert_close(window, whole[:, 3000:7000], atol=1e-6, rtol=0)


def test_noise_levels_move_to_pitch_bands_and_back():
    """A smooth log spectrum taken to the pitch bands of a note and back is the spectrum again
    (within 0.05 in log level) in the mel bands the pitch bands cover, up to Nyquist; the pitch
    bands above Nyquist hold the level at Nyquist, and a band sits at its multiple of f0."""
    centres = band_centres(64)
    spectrum = -3.0 - 2.0 * torch.log1p(centres / 500.0)                              # falls with frequency
    levels = spectrum.float().reshape(1, 64, 1).expand(2, 64, 5)
    pitch = torch.tensor([40, 76])
    moved = mel_to_pitch_bands(levels, pitch)
    back = pitch_to_mel_bands(moved.transpose(1, 2), pitch).transpose(1, 2)
    f0 = 440 * 2 ** ((pitch.double() - 69) / 12)
    for i in range(2):
        covered = (centres >= PITCH_BANDS_LOW * f0[i]) & (centres <= min(PITCH_BANDS_HIGH * f0[i], 8000))
        assert torch.allclose(back[i, covered], levels[i, covered], atol=0.05)
        multiples = torch.logspace(math.log10(PITCH_BANDS_LOW), math.log10(PITCH_BANDS_HIGH), 64,
                                   dtype=torch.float64)
        above = multiples * f0[i] > 8000
        assert torch.allclose(moved[i, above], levels[i, -1:].expand(int(above.sum()), -1))
        # The band at f0 itself (multiple 1) reads the spectrum at f0.
        k = int(torch.argmin((multiples - 1.0).abs()))
        expected = -3.0 - 2.0 * math.log1p(float(multiples[k] * f0[i]) / 500.0)
        assert abs(float(moved[i, k, 0]) - expected) < 0.05


def _tone_over_noise(pitch: int) -> torch.Tensor:
    """(1, 64000) partials over noise that rises to a peak near the 8th partial, 15 dB under them."""
    tone = _harmonic(pitch, frames=262)[:, :64000]
    noise = torch.randn(tone.shape, generator=torch.Generator().manual_seed(4)).double().numpy()
    f0 = 440 * 2 ** ((pitch - 69) / 12)
    b, a = scipy.signal.butter(2, [6 * f0, 10 * f0], btype="bandpass", fs=SR)
    shaped = torch.from_numpy(scipy.signal.lfilter(b, a, noise)).float()
    return tone + shaped * (tone.std() / shaped.std()) * 10 ** (-15 / 20)


def test_pitch_bands_hold_a_stretched_notes_noise_where_the_note_had_it():
    """A sampler stretches a key's note, noise and all, to the keys around it. In the pitch
    bands (model.noise_scale=pitch) the noise frames of a note and of its copy played 4
    semitones higher stay where they were, so an LSTM sees one shape across the keys; in the mel
    bands they move, and differ more than twice as much (measured: 0.80 against 0.25 in log
    level)."""
    pitch = 52
    note = _tone_over_noise(pitch)
    stretched = torch.from_numpy(shift_pitch(note[0].numpy(), 4, 64000)).float()[None]
    gaps = {}
    for scale in ("mel", "pitch"):
        model = Autoencoder(dimension=96, channels=16, rewrite_layers=1, frames="harmonic",
                            heads=("partials", "noise"), partials=64, noise_bands=32, noise_scale=scale)
        with torch.no_grad():
            frames = [model.encoder.measure(torch.nn.functional.pad(w, (2304, 2304)), torch.tensor([p]))[0, 64:, 20:200]
                      for w, p in ((note, pitch), (stretched, pitch + 4))]
        audible = (frames[0] > frames[0].max() - 6) | (frames[1] > frames[1].max() - 6)   # within 26 dB of the peak
        gaps[scale] = float((frames[0] - frames[1]).abs()[audible].mean())
    assert gaps["pitch"] * 2.5 < gaps["mel"], gaps


def test_pitch_bands_play_back_what_the_encoder_measured():
    """Untrained, an autoencoder with its noise levels in pitch bands plays the tone over noise
    back within 1 dB of its long-term spectrum, as the mel bands do (measured: 0.83 and 0.78 dB;
    the two interpolations between the bands are all that lies between)."""
    pitch = 52
    note = _tone_over_noise(pitch)
    model = Autoencoder(dimension=96, channels=16, rewrite_layers=1, frames="harmonic",
                        heads=("partials", "noise"), partials=64, noise_bands=32, noise_scale="pitch")
    with torch.no_grad():
        out = model(note, torch.tensor([pitch]))
    assert float(timbre_metrics(out, note)["lts_db"][0]) < 1.0


def test_noise_scale_is_checked_and_recorded_only_when_it_is_pitch():
    with pytest.raises(ConfigError, match="noise_scale"):                    # learnt frames
        load_config("tiny", overrides=["model.heads=transposed_conv,noise", "model.noise_bands=8",
                                       "model.noise_scale=pitch"])
    # Without the noise head the option means nothing, and the model does not record it.
    from sing_ray.models import build_autoencoder
    partials_alone = load_config("quick", overrides=["model.dimension=64", "model.noise_bands=0"])
    assert partials_alone.model.noise_scale == "pitch"
    assert "noise_scale" not in build_autoencoder(partials_alone.model).kwargs
    with pytest.raises(ConfigError, match="noise_scale: 'bark'"):
        load_config("quick", overrides=["model.noise_scale=bark"])
    # "mel" is what every model was before the option: its checkpoints' kwargs stay as they were.
    assert "noise_scale" not in Autoencoder(dimension=96, channels=16, rewrite_layers=1, frames="harmonic",
                                            heads=("partials", "noise"), partials=64, noise_bands=32).kwargs
