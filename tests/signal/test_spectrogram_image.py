"""core.signal.spectrogram_image: log-mel in, greyscale uint8 image out -- low frequencies at the bottom, energy dark,
min-max scaled to 0..255, enlarged to at least 64 px a side by repetition, bad input refused."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import BadInputError, Reason
from core.signal.batch import file_features
from core.signal.features import log_mel
from core.signal.spectrogram_image import IMAGE_FEATURES, MIN_SIDE, image_from_features, spectrogram_image
from tests.conftest import SR, tone, write_wav


def _row_means(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64).mean(axis=1)


# --- orientation ---------------------------------------------------------------------------------------------


def test_low_tone_is_dark_in_the_bottom_rows():
    db = log_mel(tone(1.0, freq=200.0)[:, 0], SR)  # (64 mels, 32 columns), row 0 = lowest band
    image = spectrogram_image(db)
    rows = _row_means(image)
    quarter = image.shape[0] // 4
    assert rows[-quarter:].min() < 50  # the tone's band is near black ...
    assert rows[:quarter].min() > 150  # ... and the top quarter stays light
    assert np.argmin(rows) >= image.shape[0] - quarter  # the darkest row is in the bottom quarter


def test_high_tone_is_dark_in_the_top_rows():
    db = log_mel(tone(1.0, freq=6000.0)[:, 0], SR)
    rows = _row_means(spectrogram_image(db))
    assert np.argmin(rows) < len(rows) // 4


def test_synthetic_lowest_band_lands_on_the_last_row():
    db = np.full((8, 70), -80.0)
    db[0, :] = 0.0  # only the lowest band has energy
    image = spectrogram_image(db, min_side=1)
    assert image.shape == (8, 70)
    assert (image[-1] == 0).all()  # bottom row black
    assert (image[:-1] == 255).all()  # everything else white


def test_time_runs_left_to_right():
    db = np.full((70, 70), -80.0)
    db[:, 0] = 0.0  # energy in the first column only
    image = spectrogram_image(db, min_side=1)
    assert (image[:, 0] == 0).all()
    assert (image[:, 1:] == 255).all()


# --- scaling and inversion -----------------------------------------------------------------------------------


def test_inversion_loudest_black_quietest_white_and_full_range():
    rng = np.random.default_rng(0)
    db = rng.uniform(-73.0, -5.0, size=(64, 80))  # neither 0 nor -80: scaling must stretch it
    image = spectrogram_image(db)
    assert image.dtype == np.uint8
    assert image.shape == db.shape
    assert image.min() == 0 and image.max() == 255
    loud = np.unravel_index(np.argmax(db), db.shape)
    quiet = np.unravel_index(np.argmin(db), db.shape)
    assert image[db.shape[0] - 1 - loud[0], loud[1]] == 0
    assert image[db.shape[0] - 1 - quiet[0], quiet[1]] == 255


def test_scaling_is_linear_min_max():
    rng = np.random.default_rng(1)
    db = rng.uniform(-40.0, 12.0, size=(64, 64))
    expected = np.round(255.0 * (db.max() - db) / (db.max() - db.min()))[::-1]
    np.testing.assert_array_equal(spectrogram_image(db), expected.astype(np.uint8))


def test_brighter_means_quieter_monotonically():
    column = np.linspace(-80.0, 0.0, 64)  # row 0 quietest ... row 63 loudest
    db = np.repeat(column[:, None], 64, axis=1)
    image = spectrogram_image(db)
    # flipped: image row 0 is db row 63 (loudest, 0), image row 63 is db row 0 (quietest, 255)
    values = image[:, 0].astype(int)
    assert values[0] == 0 and values[-1] == 255
    assert (np.diff(values) >= 0).all()


@pytest.mark.parametrize("value", [0.0, -80.0, 17.5])
def test_constant_input_is_all_white(value):
    image = spectrogram_image(np.full((10, 20), value))
    assert image.dtype == np.uint8
    assert (image == 255).all()
    assert min(image.shape) >= MIN_SIDE


def test_integer_and_float32_input_accepted():
    db = np.arange(64 * 64, dtype=np.int32).reshape(64, 64)
    image = spectrogram_image(db)
    assert image.dtype == np.uint8 and image.min() == 0 and image.max() == 255
    np.testing.assert_array_equal(spectrogram_image(db.astype(np.float32)), image)


# --- enlargement ---------------------------------------------------------------------------------------------


def test_small_spectrogram_enlarged_by_repetition_not_blur():
    db = np.arange(15, dtype=float).reshape(3, 5)
    small = spectrogram_image(db, min_side=1)
    assert small.shape == (3, 5)
    big = spectrogram_image(db)
    assert big.shape == (66, 65)  # ceil(64/3) = 22 repeats per row, ceil(64/5) = 13 per column
    assert min(big.shape) >= MIN_SIDE
    np.testing.assert_array_equal(big, np.repeat(np.repeat(small, 22, axis=0), 13, axis=1))
    assert set(np.unique(big)) == set(np.unique(small))  # no new (interpolated) grey levels
    for r in range(3):
        for c in range(5):
            block = big[r * 22 : (r + 1) * 22, c * 13 : (c + 1) * 13]
            assert (block == small[r, c]).all()


def test_only_the_short_side_is_enlarged():
    db = np.random.default_rng(2).normal(size=(64, 10))
    image = spectrogram_image(db)
    assert image.shape == (64, 70)  # rows already enough; columns repeated 7 times
    np.testing.assert_array_equal(image[:, ::7], spectrogram_image(db, min_side=1))


def test_large_enough_image_is_unchanged_in_size():
    db = np.random.default_rng(3).normal(size=(128, 100))
    assert spectrogram_image(db).shape == (128, 100)


def test_custom_min_side():
    image = spectrogram_image(np.random.default_rng(4).normal(size=(64, 32)), min_side=128)
    assert image.shape == (128, 128)


# --- bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [(64,), (2, 3, 4), (0, 5), (5, 0), ()],
    ids=["1-d", "3-d", "no-rows", "no-columns", "scalar"],
)
def test_bad_shapes_refused(shape):
    with pytest.raises(BadInputError) as info:
        spectrogram_image(np.zeros(shape))
    assert info.value.reason == Reason.INVALID_PARAMETER
    assert "shape" in info.value.detail


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_refused(bad):
    db = np.zeros((64, 64))
    db[3, 7] = bad
    with pytest.raises(BadInputError) as info:
        spectrogram_image(db)
    assert info.value.reason == Reason.NON_FINITE


# --- image_from_features -------------------------------------------------------------------------------------


def test_image_from_features_is_the_transposed_spectrogram(tmp_path):
    path = write_wav(tmp_path / "low.wav", tone(2.0, freq=150.0))
    features = file_features(str(path), IMAGE_FEATURES)
    assert features.shape[1] == IMAGE_FEATURES.n_mels  # (n_columns, n_mels): one mel column per row
    image = image_from_features(features)
    np.testing.assert_array_equal(image, spectrogram_image(features.T))
    assert image.dtype == np.uint8 and min(image.shape) >= MIN_SIDE
    rows = _row_means(image)
    assert np.argmin(rows) >= image.shape[0] * 3 // 4  # the 150 Hz tone is dark at the bottom
