"""core.signal.display: min/max waveform envelopes for drawing, and the span of a clip where it is most abnormal."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from core.signal.display import audio_span, envelope, most_abnormal_window
from tests.conftest import tone, write_wav

SR = 16_000
HOP = 512


def _check_envelope(signal: np.ndarray, sr: int, n_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    times, low, high = envelope(signal, sr, n_points)
    n = min(n_points, len(signal))
    assert times.shape == low.shape == high.shape == (n,)
    assert np.all(low <= high)
    assert low.min() == signal.min() and high.max() == signal.max()
    assert times[0] == 0.0 and np.all(np.diff(times) > 0) and times[-1] < len(signal) / sr
    return times, low, high


def test_envelope_of_a_real_clip(tmp_path):
    path = write_wav(tmp_path / "clip.wav", tone(10.0, freq=1000.0, seed=3))
    signal, sr = sf.read(path, dtype="float32")
    times, low, high = _check_envelope(signal, sr, 2000)
    assert len(times) == 2000
    assert times[1] == pytest.approx(len(signal) / sr / 2000)  # equal blocks of 5 ms
    # a 1 kHz tone swings through its whole range within every 5 ms block
    assert high.min() > 0.45 and low.max() < -0.45


def test_envelope_blocks_hold_their_extremes():
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(10_007).astype(np.float32)
    signal[5_000] = 9.0  # a click between block edges
    signal[123] = -7.0
    times, low, high = _check_envelope(signal, SR, 100)
    edges = np.round(times * SR).astype(int)
    for k, start in enumerate(edges):
        stop = edges[k + 1] if k + 1 < len(edges) else len(signal)
        assert (low[k], high[k]) == (signal[start:stop].min(), signal[start:stop].max())
    assert high.max() == 9.0 and low.min() == -7.0
    assert times[int(np.argmax(high))] <= 5_000 / SR < times[int(np.argmax(high))] + 0.01


@pytest.mark.parametrize("n", [1, 2, 7, 1999, 2000, 2001])
def test_envelope_of_short_signals(n):
    signal = np.sin(np.arange(n) * 0.7).astype(np.float32) + np.arange(n) * 1e-3
    times, low, high = _check_envelope(signal, SR, 2000)
    if n <= 2000:  # one sample per point: the envelope is the signal itself
        assert np.array_equal(low, signal) and np.array_equal(high, signal)
        assert np.array_equal(times, np.arange(n) / SR)


def test_envelope_with_fewer_points_than_asked():
    signal = np.linspace(-1, 1, 300, dtype=np.float32)
    times, low, high = _check_envelope(signal, 100, 7)
    assert len(times) == 7
    assert np.all(np.diff(low) > 0) and np.all(np.diff(high) > 0)  # a ramp's blocks rise


def _errors(n: int, bump_start: int, bump_frames: int, height: float = 5.0, seed: int = 0) -> np.ndarray:
    errors = 1.0 + 0.1 * np.random.default_rng(seed).random(n)
    errors[bump_start : bump_start + bump_frames] += height
    return errors


@pytest.mark.parametrize("bump_start", [2, 57, 150, 276])  # 276 + 31 = 307: ends where the last 2 frames begin
def test_most_abnormal_window_finds_a_bump_as_wide_as_the_window(bump_start):
    width = round(1.0 * SR / HOP)  # 31 frames in 1 s
    errors = _errors(309, bump_start, width)  # a 10 s clip
    start, end = most_abnormal_window(errors, HOP, SR, window_s=1.0)
    assert start == bump_start * HOP / SR
    assert end - start == pytest.approx(1.0)


@pytest.mark.parametrize("window_s", [0.5, 1.0, 2.0, 3.0])
def test_most_abnormal_window_contains_a_narrow_bump(window_s):
    bump_start, bump_frames = 200, 6
    errors = _errors(309, bump_start, bump_frames, seed=1)
    start, end = most_abnormal_window(errors, HOP, SR, window_s=window_s)
    assert end - start == pytest.approx(window_s)
    assert start <= bump_start * HOP / SR
    assert end >= (bump_start + bump_frames - 1) * HOP / SR  # the last bump frame starts inside the window
    assert start >= 0 and start * SR / HOP == pytest.approx(round(start * SR / HOP))  # on a frame start


def test_most_abnormal_window_prefers_the_larger_mean():
    errors = np.ones(309)
    errors[20:51] = 3.0  # a long moderate bump
    errors[250:254] = 20.0  # a short loud one: 4 * 19 = 76 extra against 31 * 2 = 62
    start, _ = most_abnormal_window(errors, HOP, SR)
    assert start <= 250 * HOP / SR and start + 1.0 >= 254 * HOP / SR


def test_most_abnormal_window_when_the_clip_is_shorter_than_the_window():
    errors = [0.5, 3.0, 1.0, 2.0]  # 4 frames, about 0.13 s
    assert most_abnormal_window(errors, HOP, SR, window_s=1.0) == (0.0, 4 * HOP / SR)  # never past the clip
    assert most_abnormal_window([7.0], HOP, SR, window_s=2.0) == (0.0, HOP / SR)


def test_most_abnormal_window_narrower_than_a_frame():
    errors = np.zeros(50)
    errors[33] = 1.0
    start, end = most_abnormal_window(errors, HOP, SR, window_s=0.001)  # rounds to 0 frames: one is used
    assert start == 33 * HOP / SR and end == pytest.approx(start + 0.001)


def test_most_abnormal_window_ignores_the_padded_edge_frames():
    errors = _errors(309, 150, 6, height=2.0)
    errors[:2] += 50.0  # zero padding makes a clip's first and last frames look abnormal
    errors[-2:] += 30.0
    start, end = most_abnormal_window(errors, HOP, SR)
    assert start <= 150 * HOP / SR and end >= 155 * HOP / SR
    assert most_abnormal_window(errors, HOP, SR, edge_frames=0)[0] == 0.0
    assert most_abnormal_window(errors, HOP, SR, edge_frames=3)[0] == start


def test_most_abnormal_window_keeps_the_edges_of_a_clip_too_short_to_lose_them():
    width = round(1.0 * SR / HOP)
    errors = np.ones(width + 3)  # fewer than width + 2 * 2 frames
    errors[0] = 9.0
    assert most_abnormal_window(errors, HOP, SR) == (0.0, pytest.approx(1.0))
    errors = np.ones(width + 4)  # now the 2 frames at each end can go
    errors[0] = errors[-1] = 9.0
    assert most_abnormal_window(errors, HOP, SR) == (2 * HOP / SR, 2 * HOP / SR + 1.0)


def test_audio_span_is_exact_to_the_sample_and_clipped_to_the_signal():
    signal = np.arange(10 * SR, dtype=np.float32)  # sample k holds k
    span = audio_span(signal, SR, 3.25, 4.5)  # not whole seconds: a player's own start/end would round them
    assert span.shape == (int(1.25 * SR),) and span[0] == 3.25 * SR and span[-1] == 4.5 * SR - 1
    assert np.shares_memory(span, signal)  # a view: no copy of a long clip
    assert audio_span(signal, SR, 9.5, 12.0).shape == (SR // 2,)  # past the end: up to the end
    assert audio_span(signal, SR, -1.0, 0.5).shape == (SR // 2,)  # before the start: from the start
    assert audio_span(signal, SR, 20.0, 21.0).shape == (1,)  # nothing left: one sample, never an empty player
    assert audio_span(signal, SR, 2.0, 2.0).shape == (1,)
