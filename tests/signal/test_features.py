"""core.signal.features: the fast log-mel features must match the seed's librosa recipe."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from core.errors import BadInputError, Reason
from core.signal.audio import load_clip
from core.signal.features import (
    FeatureParams,
    _band_ranges,
    _frame_windowed,
    log_mel,
    log_mel_frames,
    mel_filterbank,
    pcen_columns,
    required_samples,
    stack_frames,
    stft_db,
    unstack_frames,
)
from tests.conftest import tone

TOL_DB = 1e-3
ROUNDING_DB = 1e-4  # float32 rounding may put the maximum a hair above 0 dB

PARAM_SETS = {
    "defaults": dict(sr=16_000),
    "128mels-3frames-2048fft-256hop": dict(sr=16_000, n_mels=128, frames=3, n_fft=2048, hop_length=256),
    "sr22050": dict(sr=22_050),
}


def seed_features(y, sr, n_mels=64, frames=5, n_fft=1024, hop_length=512) -> np.ndarray:
    """The seed's extract_signal_features: librosa log-mel, then a Python loop stacking ``frames`` columns."""
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    L = librosa.power_to_db(mel, ref=np.max)
    n = L.shape[1] - frames + 1
    features = np.zeros((n, n_mels * frames), dtype=np.float32)
    for t in range(frames):
        features[:, n_mels * t : n_mels * (t + 1)] = L[:, t : t + n].T
    return features


def _noise(sr: int) -> np.ndarray:
    return (0.3 * np.random.default_rng(1).standard_normal(2 * sr)).astype(np.float32)


def _tone_then_silence(sr: int) -> np.ndarray:
    y = tone(2.0, sr=sr)[:, 0].copy()
    y[sr:] = 0.0
    return y


SIGNALS = {"noise": _noise, "tone-then-silence": _tone_then_silence}


def _assert_in_db_range(x: np.ndarray) -> None:
    assert x.dtype == np.float32
    assert x.max() <= ROUNDING_DB
    assert x.min() >= -80.0 - ROUNDING_DB


def _check_against_seed(y, sr, **params) -> None:
    ours = log_mel_frames(y, sr, **params)
    reference = seed_features(y, sr, **params)
    p = FeatureParams(**params)
    n_vectors = 1 + y.size // p.hop_length - p.frames + 1
    assert ours.shape == reference.shape == (n_vectors, p.dims)
    _assert_in_db_range(ours)
    assert np.abs(ours - reference).max() < TOL_DB


@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("params", PARAM_SETS.values(), ids=PARAM_SETS.keys())
def test_log_mel_frames_matches_seed_recipe(signal, params):
    params = dict(params)
    sr = params.pop("sr")
    _check_against_seed(SIGNALS[signal](sr), sr, **params)


@pytest.mark.parametrize("params", PARAM_SETS.values(), ids=PARAM_SETS.keys())
def test_log_mel_frames_matches_seed_recipe_on_a_real_clip(real_data, params):
    params = dict(params)
    params.pop("sr")
    clip = load_clip(sorted(real_data.rglob("*.wav"))[0])
    _check_against_seed(clip.signal, clip.sr, **params)


def test_log_mel_frames_layout_is_consecutive_columns():
    y = _noise(16_000)
    columns = log_mel(y, 16_000).T  # (n_columns, n_mels)
    features = log_mel_frames(y, 16_000, frames=5)
    np.testing.assert_array_equal(features[3], columns[3:8].ravel())


@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("sr, n_mels, n_fft, hop", [(16_000, 64, 1024, 512), (22_050, 128, 2048, 256)])
def test_log_mel_matches_librosa(signal, sr, n_mels, n_fft, hop):
    y = SIGNALS[signal](sr)
    ours = log_mel(y, sr, n_mels=n_mels, n_fft=n_fft, hop_length=hop)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels)
    reference = librosa.power_to_db(mel, ref=np.max)
    assert ours.shape == reference.shape == (n_mels, 1 + y.size // hop)
    assert ours.flags.c_contiguous
    _assert_in_db_range(ours)
    assert np.abs(ours - reference).max() < TOL_DB


def _librosa_stft_db(y, n_fft=1024, hop_length=512) -> np.ndarray:
    return librosa.amplitude_to_db(np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length)), ref=np.max)


@pytest.mark.parametrize("n_fft, hop", [(1024, 512), (2048, 256)])
def test_stft_db_matches_librosa_on_noise(n_fft, hop):
    y = _noise(16_000)
    ours = stft_db(y, n_fft=n_fft, hop_length=hop)
    reference = _librosa_stft_db(y, n_fft, hop)
    assert ours.shape == reference.shape == (1 + n_fft // 2, 1 + y.size // hop)
    _assert_in_db_range(ours)
    assert np.abs(ours - reference).max() < TOL_DB


def test_stft_db_matches_librosa_on_a_tone():
    y = tone(2.0)[:, 0]
    assert np.abs(stft_db(y) - _librosa_stft_db(y)).max() < TOL_DB


def test_too_short_signal_is_refused():
    y = _noise(16_000)[: required_samples() - 1]
    for compute in (lambda: log_mel_frames(y, 16_000), lambda: log_mel(y[:1023], 16_000), lambda: stft_db(y[:1023])):
        with pytest.raises(BadInputError) as caught:
            compute()
        assert caught.value.reason is Reason.TOO_SHORT and caught.value.path is None


def test_exactly_required_samples_gives_one_vector():
    params = FeatureParams()
    features = log_mel_frames(_noise(16_000)[: params.min_samples], 16_000)
    assert features.shape == (1, params.dims)


def test_exactly_required_samples_gives_one_vector_with_odd_n_fft():
    n = required_samples(frames=5, n_fft=1023, hop_length=512)
    features = log_mel_frames(_noise(16_000)[:n], 16_000, n_fft=1023)
    assert features.shape[0] >= 1


@pytest.mark.parametrize(
    "compute",
    [
        lambda y: log_mel_frames(np.stack([y, y]), 16_000),
        lambda y: log_mel(y[:, None], 16_000),
        lambda y: stft_db(np.stack([y, y])),
        lambda y: log_mel_frames(y, 16_000, hop_length=0),
        lambda y: log_mel_frames(y, 16_000, frames=0),
        lambda y: stft_db(y, n_fft=1),
    ],
    ids=["2d-frames", "2d-log-mel", "2d-stft", "hop0", "frames0", "nfft1"],
)
def test_invalid_parameters_are_refused(compute):
    with pytest.raises(BadInputError) as caught:
        compute(_noise(16_000))
    assert caught.value.reason is Reason.INVALID_PARAMETER


def test_required_samples_and_feature_params():
    assert required_samples() == 2048
    assert required_samples(frames=1, n_fft=1024, hop_length=512) == 1024
    assert required_samples(frames=3, n_fft=4096, hop_length=512) == 4096
    assert required_samples(frames=11, n_fft=1024, hop_length=256) == 2560
    assert FeatureParams().min_samples == 2048
    assert FeatureParams().dims == 320
    assert FeatureParams(n_mels=128, frames=3, n_fft=2048, hop_length=256).min_samples == 2048
    assert FeatureParams(n_mels=128, frames=3).dims == 384
    assert FeatureParams(n_mels=32).as_dict() == dict(n_mels=32, frames=5, n_fft=1024, hop_length=512)


def test_mel_filterbank_is_cached_and_read_only():
    fb = mel_filterbank(16_000, 1024, 64)
    assert mel_filterbank(16_000, 1024, 64) is fb
    assert mel_filterbank(16_000, 1024, 128) is not fb
    assert fb.shape == (513, 64) and fb.dtype == np.float32
    np.testing.assert_allclose(fb, librosa.filters.mel(sr=16_000, n_fft=1024, n_mels=64).T, rtol=1e-6, atol=1e-9)
    assert not fb.flags.writeable
    with pytest.raises(ValueError):
        fb[0, 0] = 1.0


def test_stacked_frames_are_a_read_only_view_of_the_columns():
    columns = np.arange(40 * 8, dtype=np.float32).reshape(40, 8)
    stacked = stack_frames(columns, 5)
    assert stacked.shape == (36, 40) and stacked.dtype == np.float32
    assert np.shares_memory(stacked, columns) and not stacked.flags.writeable
    np.testing.assert_array_equal(stacked[7], columns[7:12].ravel())
    copy = np.array(stacked)
    copy[0, 0] = -1.0  # a copy is writable
    with pytest.raises(ValueError):
        stacked[0, 0] = -1.0


@pytest.mark.parametrize(
    "sr, n_fft, n_mels", [(16_000, 1024, 64), (16_000, 512, 128), (8_000, 255, 40), (44_100, 2048, 8)]
)
def test_band_ranges_rebuild_the_mel_filterbank_exactly(sr, n_fft, n_mels):
    starts, offsets, weights = _band_ranges(sr, n_fft, n_mels)
    rebuilt = np.zeros((n_fft // 2 + 1, n_mels), np.float32)
    for m in range(n_mels):
        rebuilt[starts[m] : starts[m] + offsets[m + 1] - offsets[m], m] = weights[offsets[m] : offsets[m + 1]]
    np.testing.assert_array_equal(rebuilt, mel_filterbank(sr, n_fft, n_mels))
    assert weights.size < 3 * (n_fft // 2 + 1)  # a bin is in at most two triangular filters


@pytest.mark.parametrize(
    "n, n_fft, hop, first, columns", [(2048, 1024, 512, 0, 5), (100, 64, 7, 3, 12), (300, 63, 50, 0, 7)]
)
def test_frame_windowed_is_librosa_centred_zero_padded_framing(n, n_fft, hop, first, columns):
    y = np.random.default_rng(n).uniform(-1, 1, n).astype(np.float32)
    window = np.random.default_rng(1).uniform(0, 1, n_fft).astype(np.float32)
    out = np.full((columns, n_fft), np.nan, np.float32)
    _frame_windowed(y, first, hop, window, out)
    padded = np.pad(y, (n_fft // 2, n_fft // 2 + hop * (first + columns)))
    expected = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][first : first + columns] * window
    np.testing.assert_array_equal(out, expected)


def test_unstack_frames_gives_back_the_stacked_columns():
    columns = np.random.default_rng(0).normal(-40.0, 5.0, (50, 8)).astype(np.float32)
    restored = unstack_frames(stack_frames(columns, 5), 8)
    assert restored.dtype == np.float64 and restored.shape == (50, 8)
    np.testing.assert_array_equal(restored, columns)


def _steady_then_click(level_db: float = -30.0) -> np.ndarray:
    """Noise-like steady columns (dB, 200 x 16) with one loud column (a click) at 150."""
    columns = level_db + np.random.default_rng(1).normal(0.0, 1.0, (200, 16))
    columns[150] += 20.0
    return columns


def test_pcen_levels_steady_sound_and_lifts_a_click():
    """What PCEN is for: a steady background, whatever its level, settles to one small value per band, while a
    short loud event stands far above it (in dB the click is 20 above a steady -30; the background is not 0)."""
    out = pcen_columns(_steady_then_click())
    assert out.shape == (200, 16) and out.dtype == np.float64 and (out >= 0).all()
    steady = out[50:140]
    assert out[150].mean() > 5 * steady.mean()  # about 7: 20 dB, square-root compressed, less the bias
    quieter = pcen_columns(_steady_then_click(level_db=-60.0))[50:140]
    np.testing.assert_allclose(quieter.mean(), steady.mean(), rtol=0.2)  # 30 dB quieter, nearly the same


def test_pcen_of_steady_sound_is_flat_from_the_first_column():
    """The smoother starts settled: with librosa's default start a clip opened with a ramp some 30 columns long
    (2.9 falling to 0.41 for a steady -30 dB), which top-10% pooling took for an event in every clip."""
    out = pcen_columns(np.full((100, 4), -30.0))
    np.testing.assert_allclose(out, out[-1, 0], rtol=1e-9)


def test_pcen_all_but_removes_a_gain_change():
    columns = _steady_then_click()
    np.testing.assert_allclose(pcen_columns(columns + 6.0), pcen_columns(columns), rtol=0.05)


def test_importing_the_features_does_not_load_scipy_signal():
    """PCEN needs scipy.signal (0.7 s to import); every CLI command and dashboard start imports these features."""
    import subprocess
    import sys

    code = "import sys, core.signal.features\nprint('scipy.signal' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == "False"
