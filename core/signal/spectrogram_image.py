"""Spectrogram images as the seed's image classifier sees them.

Pure computation: a log-mel array in, a greyscale ``uint8`` image out.  The recipe:
log-mel in dB, min-max scaled to 0-255, low frequencies at the bottom, inverted so
that energy is dark, each side at least :data:`MIN_SIDE` pixels (Rekognition Custom
Labels refuses smaller images).
"""

from __future__ import annotations

import numpy as np

from core.errors import BadInputError, Reason
from core.signal.features import FeatureParams

MIN_SIDE = 64  # px: Rekognition Custom Labels' smallest accepted side
IMAGE_FEATURES = FeatureParams(frames=1)  # one log-mel column per feature vector: (n_columns, n_mels)


def spectrogram_image(log_mel_db: np.ndarray, *, min_side: int = MIN_SIDE) -> np.ndarray:
    """Greyscale image of a log-mel spectrogram.

    Parameters
    ----------
    log_mel_db : np.ndarray, shape ``(n_mels, n_columns)``
        Log-mel power in dB, row 0 the lowest band (as :func:`core.signal.features.log_mel`).
    min_side : int
        Smallest height and width in pixels; a smaller spectrogram is enlarged by
        repeating rows and columns (nearest neighbour), never blurred.

    Returns
    -------
    np.ndarray, uint8, shape ``(height, width)`` with ``height >= n_mels``, ``width >= n_columns``
        Row 0 is the highest band (low frequencies at the bottom); 0 (black) is the
        loudest cell, 255 (white) the quietest.  A spectrogram with no dynamic
        range (all cells equal) is all white.
    """
    db = np.asarray(log_mel_db, dtype=np.float64)
    if db.ndim != 2 or 0 in db.shape:
        raise BadInputError(Reason.INVALID_PARAMETER, f"log-mel must be (n_mels, n_columns), got shape {db.shape}")
    if not np.isfinite(db).all():
        raise BadInputError(Reason.NON_FINITE, "log-mel holds NaN or infinite values")
    low, high = db.min(), db.max()
    scaled = (db - low) / (high - low) if high > low else np.zeros_like(db)
    image = np.round(255.0 * (1.0 - scaled[::-1])).astype(np.uint8)
    return _enlarge(image, min_side)


def image_from_features(features: np.ndarray, *, min_side: int = MIN_SIDE) -> np.ndarray:
    """:func:`spectrogram_image` of per-column features ``(n_columns, n_mels)`` (``frames=1``)."""
    return spectrogram_image(np.asarray(features).T, min_side=min_side)


def _enlarge(image: np.ndarray, min_side: int) -> np.ndarray:
    rows = -(-min_side // image.shape[0])  # ceiling division: repeats needed per row
    columns = -(-min_side // image.shape[1])
    if rows > 1 or columns > 1:
        image = np.repeat(np.repeat(image, rows, axis=0), columns, axis=1)
    return image
