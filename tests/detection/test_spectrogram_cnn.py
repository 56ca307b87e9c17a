"""core.detection.spectrogram_cnn: the supervised CNN on spectrogram images, on generated log-mel features.

Normal clips are a fixed spectral profile (dB) plus a rank-2 pattern over time plus noise, one log-mel
column per vector (``frames=1``, as the exported images use); abnormal clips add a band of energy in
mel bands 40-47.  The CNN must separate held-out clips (minimum AUC), keep P(abnormal) in [0, 1],
explain per column and band, persist exactly, and refuse what it cannot learn from.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.detection.base import META_FILE
from core.detection.metrics import roc_auc
from core.detection.registry import SUPERVISED, Detector, Explanation, detector_class, detector_names
from core.detection.spectrogram_cnn import MODEL_FILE, SpectrogramCNN
from core.errors import BadInputError, NotFittedError, Reason
from core.signal.features import FeatureParams
from core.signal.spectrogram_image import IMAGE_FEATURES, image_from_features

N_MELS = 64
FAULT_BANDS = np.arange(40, 48)
FAULT_DB = 8.0
MIN_AUC = 0.9
# small images and few epochs: ~3 s per fit on a CPU, and still well above MIN_AUC
FAST = {"epochs": 20, "min_steps": 0, "input_height": 32, "input_width": 32}
TINY = {"epochs": 2, "min_steps": 0, "input_height": 16, "input_width": 16}  # when any fitted model will do

_pattern = np.random.default_rng(1234)
PROFILE = -40.0 + 15.0 * np.cos(2 * np.pi * np.arange(N_MELS) / 32)  # dB per mel band
LOADINGS = 3.0 * _pattern.normal(size=(2, N_MELS))  # a rank-2 variation over time


def clip_features(rng: np.random.Generator, *, abnormal: bool = False, n_columns: int | None = None) -> np.ndarray:
    """One clip's per-column log-mel features, float32 ``(n_columns, 64)``."""
    n = int(rng.integers(30, 51)) if n_columns is None else n_columns
    columns = PROFILE + rng.normal(size=(n, 2)) @ LOADINGS + rng.normal(scale=1.5, size=(n, N_MELS))
    if abnormal:
        columns[:, FAULT_BANDS] += FAULT_DB
    return columns.astype(np.float32)


def labelled(seed: int, n: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` clips alternating normal and abnormal, and their labels (1 = abnormal)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    return [clip_features(rng, abnormal=bool(label)) for label in y], y


@pytest.fixture(scope="module")
def train() -> tuple[list[np.ndarray], np.ndarray]:
    return labelled(1, 40)


@pytest.fixture(scope="module")
def held_out() -> tuple[list[np.ndarray], np.ndarray]:
    return labelled(2, 40)


@pytest.fixture(scope="module")
def fitted(train) -> tuple[SpectrogramCNN, SpectrogramCNN, list[tuple[int, int]]]:
    """The CNN fitted once on ``train``, what ``fit`` returned, and the progress it reported."""
    calls: list[tuple[int, int]] = []
    detector = SpectrogramCNN(**FAST)
    returned = detector.fit(*train, progress=lambda done, total: calls.append((done, total)))
    return detector, returned, calls


@pytest.fixture(scope="module")
def tiny(train) -> SpectrogramCNN:
    return SpectrogramCNN(**TINY).fit(*train)


# --- registry and construction -----------------------------------------------------------------------------------


def test_registered_as_the_supervised_detector():
    assert detector_class("spectrogram_cnn") is SpectrogramCNN
    assert "spectrogram_cnn" in SUPERVISED
    assert detector_names(supervised=True) == ["spectrogram_cnn"]
    assert "spectrogram_cnn" not in detector_names()  # `train` (normal clips only) never offers it
    assert SpectrogramCNN.description


def test_defaults_read_one_log_mel_column_per_vector():
    detector = SpectrogramCNN()
    assert detector.feature_params == IMAGE_FEATURES
    assert detector.feature_params.frames == 1
    assert detector.params == SpectrogramCNN.default_params()
    assert SpectrogramCNN(epochs=3).params["epochs"] == 3


@pytest.mark.parametrize("frames", [2, 5])
def test_stacked_frames_are_refused(frames):
    with pytest.raises(BadInputError) as err:
        SpectrogramCNN(FeatureParams(frames=frames))
    assert err.value.reason == Reason.INVALID_PARAMETER


# --- fitting -------------------------------------------------------------------------------------------------------


def test_fit_returns_self_and_scores_the_training_clips(fitted, train):
    detector, returned, _ = fitted
    features, _ = train
    assert returned is detector
    assert detector.is_fitted
    scores = detector.decision_scores_
    assert scores.shape == (len(features),)
    assert scores.dtype == np.float64
    assert ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_allclose(scores, detector.decision_function(features), rtol=1e-5, atol=1e-6)
    assert set(detector.history_) >= {"loss", "accuracy"}
    assert len(detector.history_["loss"]) == FAST["epochs"]


def test_progress_is_reported_after_every_epoch(fitted):
    _, _, calls = fitted
    assert calls == [(epoch, FAST["epochs"]) for epoch in range(1, FAST["epochs"] + 1)]


def test_fit_images_returns_self_on_images_of_any_size(train):
    features, y = train
    images = [image_from_features(f) for f in features[:8]]
    images[0] = np.repeat(images[0], 2, axis=1)  # another width: every image is resized to the input size
    detector = SpectrogramCNN(**TINY)
    assert detector.fit_images(images, y[:8]) is detector
    assert detector.decision_scores_.shape == (8,)
    p = detector.predict_images(images)
    assert p.dtype == np.float64 and p.shape == (8,)
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(detector.decision_scores_, p, rtol=1e-5, atol=1e-6)


def test_abnormal_clips_score_higher_on_held_out_clips(fitted, held_out):
    detector, _, _ = fitted
    features, y = held_out
    scores = detector.decision_function(features)
    assert scores.shape == (len(features),)
    assert ((scores >= 0) & (scores <= 1)).all()
    auc = roc_auc(y, scores)
    assert auc >= MIN_AUC, f"spectrogram_cnn: held-out AUC {auc:.3f}"
    # P(abnormal) with 0.5 as the natural threshold: most clips land on the right side of it
    assert np.mean((scores > 0.5) == y.astype(bool)) >= 0.8


def test_a_clips_score_does_not_depend_on_the_others(fitted, held_out):
    detector, _, _ = fitted
    features, _ = held_out
    together = detector.decision_function(features[:6])
    alone = np.array([detector.decision_function([f])[0] for f in features[:6]])
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-6)


def test_same_seed_same_model(train):
    features, y = train
    first = SpectrogramCNN(**TINY).fit(features[:10], y[:10])
    second = SpectrogramCNN(**TINY).fit(features[:10], y[:10])
    np.testing.assert_allclose(second.decision_scores_, first.decision_scores_, rtol=1e-5, atol=1e-6)


REFUSED = {
    "no-labels": lambda f, y: (f, None),
    "one-class": lambda f, y: (f, np.zeros(len(f), int)),
    "fewer-labels": lambda f, y: (f, y[:-1]),
    "labels-not-0-1": lambda f, y: (f, y + 1),
}


@pytest.mark.parametrize("make_bad", REFUSED.values(), ids=REFUSED.keys())
def test_labels_it_cannot_learn_from_are_refused(train, make_bad):
    features, y = make_bad(*train)
    with pytest.raises(BadInputError) as err:
        SpectrogramCNN(**TINY).fit(features, y)
    assert err.value.reason == Reason.INVALID_PARAMETER
    images = [image_from_features(f) for f in features]
    with pytest.raises(BadInputError):
        SpectrogramCNN(**TINY).fit_images(images, y)


def test_unfitted_detector_refuses_to_score(train, tmp_path):
    features, _ = train
    detector = SpectrogramCNN(**TINY)
    assert not detector.is_fitted
    with pytest.raises(NotFittedError):
        detector.decision_function(features[:2])
    with pytest.raises(NotFittedError):
        detector.predict_images([image_from_features(features[0])])
    with pytest.raises(NotFittedError):
        detector.explain(features[0])
    with pytest.raises(NotFittedError):
        detector.save(tmp_path / "model")


# --- explaining ----------------------------------------------------------------------------------------------------


def test_explain_gives_a_map_per_column_and_mel_band(fitted, held_out):
    detector, _, _ = fitted
    features, _ = held_out
    clip = features[1]
    explanation = detector.explain(clip)
    assert isinstance(explanation, Explanation)
    assert explanation.error_map.shape == (len(clip), N_MELS)
    assert explanation.error_map.dtype == np.float64
    assert np.isfinite(explanation.error_map).all()
    assert (explanation.error_map >= 0).all()
    assert explanation.error_map.max() > 0
    assert explanation.frame_errors.shape == (len(clip),)
    assert explanation.band_errors.shape == (N_MELS,)
    summary = explanation.summary()
    assert len(summary["frame_errors"]) == len(clip) and len(summary["band_errors"]) == N_MELS


def test_explain_points_at_the_faulty_bands(fitted, held_out):
    """The saliency (how strongly each cell moves P(abnormal)) is largest where the fault adds energy."""
    detector, _, _ = fitted
    features, y = held_out
    _, explanations = detector.score_and_explain([f for f, label in zip(features, y, strict=True) if label])
    total = sum(e.band_errors for e in explanations)
    others = np.delete(total, FAULT_BANDS)
    assert total[FAULT_BANDS].mean() > 2 * others.mean()
    assert len(set(np.argsort(total)[-len(FAULT_BANDS) :]) & set(FAULT_BANDS)) >= len(FAULT_BANDS) // 2


def test_explain_works_for_a_clip_of_another_length(fitted):
    detector, _, _ = fitted
    clip = clip_features(np.random.default_rng(7), abnormal=True, n_columns=120)
    assert detector.explain(clip).error_map.shape == (120, N_MELS)


def test_score_and_explain_agree_with_the_separate_calls(fitted, held_out):
    detector, _, _ = fitted
    features, _ = held_out
    scores, explanations = detector.score_and_explain(features[:4])
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, detector.decision_function(features[:4]), rtol=1e-4, atol=1e-6)
    assert len(explanations) == 4
    for clip, explanation in zip(features[:4], explanations, strict=True):
        assert explanation.error_map.shape == (len(clip), N_MELS)
        np.testing.assert_allclose(explanation.error_map, detector.explain(clip).error_map, rtol=1e-4, atol=1e-9)


# --- persistence ---------------------------------------------------------------------------------------------------


def test_save_then_load_gives_the_same_detector(fitted, held_out, tmp_path):
    detector, _, _ = fitted
    features, _ = held_out
    folder = detector.save(tmp_path / "model", provenance={"trained_on": "generated"})
    assert (folder / MODEL_FILE).is_file()
    meta = json.loads((folder / META_FILE).read_text())
    assert meta["detector"] == "spectrogram_cnn"
    assert meta["provenance"] == {"trained_on": "generated"}

    loaded = Detector.load(folder)
    assert type(loaded) is SpectrogramCNN
    assert loaded.params == detector.params
    assert loaded.feature_params == detector.feature_params == IMAGE_FEATURES
    np.testing.assert_array_equal(loaded.decision_scores_, detector.decision_scores_)
    np.testing.assert_allclose(loaded.decision_function(features), detector.decision_function(features), rtol=1e-6)
    np.testing.assert_allclose(
        loaded.explain(features[1]).error_map, detector.explain(features[1]).error_map, rtol=1e-5, atol=1e-9
    )


def test_a_tiny_model_round_trips_too(tiny, held_out, tmp_path):
    features, _ = held_out
    loaded = Detector.load(tiny.save(tmp_path / "tiny"))
    np.testing.assert_allclose(loaded.decision_function(features), tiny.decision_function(features), rtol=1e-6)


def test_small_datasets_get_at_least_min_steps_gradient_steps():
    detector = SpectrogramCNN(epochs=60, min_steps=800, batch_size=8)
    assert detector.epochs_for(44) == 134  # 6 steps per epoch: 800 steps need 134 epochs
    assert detector.epochs_for(4000) == 60  # 500 steps per epoch: the plain epoch count
    assert SpectrogramCNN(epochs=3, min_steps=0).epochs_for(10) == 3


def test_many_short_epochs_run_as_at_most_epochs_longer_ones_with_as_many_steps():
    detector = SpectrogramCNN(epochs=60, min_steps=800, batch_size=8)
    epochs, repeats = detector.schedule_for(44)  # 134 passes of 6 steps
    assert (epochs, repeats) == (45, 3) and epochs * repeats >= detector.epochs_for(44)
    assert detector.schedule_for(4000) == (60, 1)  # large datasets: the plain epochs, nothing repeated
    progress = []
    fitted = SpectrogramCNN(**{**TINY, "epochs": 2, "min_steps": 12, "batch_size": 4}).fit_images(
        [np.full((16, 16), 40 * (i % 2), np.uint8) for i in range(8)], [i % 2 for i in range(8)],
        progress=lambda done, total: progress.append((done, total)))  # fmt: skip
    assert progress == [(1, 2), (2, 2)]  # 6 passes of 2 steps, as 2 epochs of the images repeated 3 times
    assert fitted.history_["loss"] and len(fitted.history_["loss"]) == 2
