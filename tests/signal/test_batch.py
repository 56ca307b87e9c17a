"""core.signal.batch.extract_features: features for good files, recorded failures for bad ones, never stopped."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import librosa
import numpy as np
import pytest

from core.errors import Reason
from core.signal.batch import extract_features, file_features
from core.signal.features import FeatureParams
from tests.conftest import SR, tone, write_wav


def _make_files(folder) -> tuple[list[str], dict[str, Reason]]:
    """Eight good WAVs (one FLAC) and one bad file of each kind, interleaved."""
    good = [write_wav(folder / f"good{i}.wav", tone(1.0 + 0.25 * i, freq=200.0 * (i + 1), seed=i)) for i in range(7)]
    good.append(write_wav(folder / "good.flac", tone(1.0, channels=2)))
    whole = good[0].read_bytes()
    (folder / "text.wav").write_text("not audio\n" * 20)
    (folder / "cut.wav").write_bytes(whole[: len(whole) // 2])
    (folder / "empty.wav").write_bytes(b"")
    nan = tone(1.0)
    nan[10, 0] = np.nan
    bad = {
        folder / "text.wav": Reason.NOT_AUDIO,
        folder / "cut.wav": Reason.CORRUPT,
        folder / "empty.wav": Reason.EMPTY,
        write_wav(folder / "nan.wav", nan, subtype="FLOAT"): Reason.NON_FINITE,
        write_wav(folder / "silent.wav", np.zeros((SR, 1), np.float32)): Reason.SILENT,
        write_wav(folder / "short.wav", tone(0.05)): Reason.TOO_SHORT,
        folder / "missing.wav": Reason.NOT_FOUND,
    }
    paths = [str(p) for pair in zip(good, list(bad) + [None], strict=True) for p in pair if p is not None]
    return paths, {str(p): reason for p, reason in bad.items()}


@pytest.mark.parametrize("n_jobs, uses_pool", [(2, True), (1, False)])
def test_extract_features_mixes_good_and_bad_files(tmp_path, monkeypatch, n_jobs, uses_pool):
    submitted = []  # map_guarded may reuse a warm pool, so count work handed to any pool, not pools opened
    real_submit = ProcessPoolExecutor.submit

    def counting_submit(pool, *args, **kwargs):
        submitted.append(args)
        return real_submit(pool, *args, **kwargs)

    monkeypatch.setattr(ProcessPoolExecutor, "submit", counting_submit)
    paths, bad = _make_files(tmp_path)
    assert len(paths) == 15
    calls: list[tuple[int, int]] = []
    params = FeatureParams(n_mels=32, frames=3)

    batch = extract_features(paths, params, n_jobs=n_jobs, progress=lambda done, total: calls.append((done, total)))

    assert bool(submitted) is uses_pool
    assert set(batch.failures) == set(bad)
    assert {path: error.reason for path, error in batch.failures.items()} == bad
    for path, error in batch.failures.items():
        assert error.path == path and path in str(error)
    assert set(batch.features) == set(paths) - set(bad)
    for path, features in batch.features.items():
        expected = file_features(path, params)
        assert features.shape == expected.shape and features.shape[1] == params.dims
        np.testing.assert_allclose(features, expected, rtol=0, atol=1e-5)
    assert calls[0] == (0, 15) and calls[-1] == (15, 15)
    assert all(total == 15 for _, total in calls)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_extract_features_uses_the_chosen_channel(tmp_path):
    paths = [str(write_wav(tmp_path / f"stereo{i}.wav", tone(1.0, channels=2, seed=i))) for i in range(2)]
    batch = extract_features(paths, channel=1, n_jobs=1)
    for path in paths:
        np.testing.assert_array_equal(batch.features[path], file_features(path, channel=1))
        assert not np.allclose(batch.features[path], file_features(path, channel=0), atol=1)
    failed = extract_features(paths, channel=2, n_jobs=1).failures
    assert {error.reason for error in failed.values()} == {Reason.CHANNEL_OUT_OF_RANGE}


def test_file_features_default_params(tmp_path):
    path = write_wav(tmp_path / "a.wav", tone(1.0))
    features = file_features(str(path))
    assert features.shape == (1 + SR // 512 - 4, 320) and features.dtype == np.float32


def _seed_file_features(path, channel: int, p: FeatureParams = FeatureParams()) -> np.ndarray:
    """The seed's per-file pipeline (bench/features.py's baseline): librosa.load, melspectrogram, power_to_db."""
    signal, sr = librosa.load(path, sr=None, mono=False)
    mel = librosa.feature.melspectrogram(
        y=np.atleast_2d(signal)[channel], sr=sr, n_fft=p.n_fft, hop_length=p.hop_length, n_mels=p.n_mels
    )
    log_mel = librosa.power_to_db(mel, ref=np.max)
    n = log_mel.shape[1] - p.frames + 1
    return np.concatenate([log_mel[:, t : t + n].T for t in range(p.frames)], axis=1)


@pytest.mark.parametrize("channel", [0, 5])
def test_file_features_are_within_1e_3_db_of_the_seed_pipeline_on_8_channel_pcm16(tmp_path, channel):
    path = str(write_wav(tmp_path / "eight.wav", tone(3.0, channels=8, amplitude=0.3, seed=3)))
    ours = file_features(path, channel=channel)
    seed = _seed_file_features(path, channel)
    assert ours.shape == seed.shape and ours.dtype == np.float32
    assert np.abs(ours - seed).max() < 1e-3
    assert np.abs(ours - _seed_file_features(path, (channel + 1) % 8)).max() > 1  # the channel asked for


def test_file_features_are_within_1e_3_db_of_the_seed_pipeline_on_real_8_channel_clips(real_data):
    paths = sorted((real_data / "mimii_8ch").rglob("*.wav"))[:4]
    assert paths
    for path in paths:
        assert np.abs(file_features(str(path)) - _seed_file_features(str(path), 0)).max() < 1e-3


def test_features_outlive_the_buffers_the_next_file_reuses(tmp_path):
    """The samples and spectra live in reused per-thread buffers; the features returned must not."""
    paths = [str(write_wav(tmp_path / f"c{i}.wav", tone(2.0, freq=300.0 * (i + 1), seed=i))) for i in range(3)]
    first = file_features(paths[0])
    kept = first.copy()
    later = [file_features(path) for path in paths[1:]]
    np.testing.assert_array_equal(first, kept)
    assert not np.allclose(later[0], kept, atol=1)
    with ThreadPoolExecutor(max_workers=3) as pool:  # each thread has its own buffers
        together = list(pool.map(file_features, paths * 4))
    for index, features in enumerate(together):
        np.testing.assert_array_equal(features, [kept, *later][index % 3])
