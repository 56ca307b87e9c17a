"""A fast statistical detector: Mahalanobis distance of a clip's log-mel statistics.

Each clip is summarised by the mean and standard deviation over time of every mel
band (``2 * n_mels`` values, dB).  The normal clips' summaries give a mean and a
shrunk (Ledoit-Wolf) covariance; a clip's score is its squared Mahalanobis
distance from them.  Trains in milliseconds; needs at least 3 normal clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Self

import numpy as np
from sklearn.covariance import LedoitWolf

from core.detection.base import Detector, Explanation, stack_clips
from core.errors import BadInputError, Reason

STATE_FILE = "state.npz"


class MahalanobisDetector(Detector):
    name = "mahalanobis"
    description = "Mahalanobis distance of per-band log-mel mean and spread; trains in milliseconds"

    def _columns(self, features: np.ndarray) -> np.ndarray:
        """The log-mel columns of one clip, ``(n_vectors, n_mels)`` (each vector's first frame)."""
        return features[:, : self.feature_params.n_mels]

    def _summaries(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        stack_clips(clips, self.feature_params.dims)  # validates shapes
        columns = (self._columns(c).astype(np.float64) for c in clips)
        return np.array([np.r_[c.mean(axis=0), c.std(axis=0)] for c in columns])

    def fit(self, clips: Sequence[np.ndarray], progress=None) -> Self:
        if len(clips) < 3:
            raise BadInputError(Reason.INVALID_PARAMETER, f"need at least 3 normal clips, got {len(clips)}")
        summaries = self._summaries(clips)
        estimator = LedoitWolf().fit(summaries)
        self.location_ = estimator.location_
        self.precision_ = estimator.precision_
        columns = np.concatenate([self._columns(c) for c in clips])
        self.band_mean_ = columns.mean(axis=0)
        self.band_std_ = columns.std(axis=0) + 1e-6
        self.decision_scores_ = self.decision_function(clips)
        if progress:
            progress(1, 1)
        return self

    def decision_function(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        if not hasattr(self, "precision_"):
            self._check_fitted()
        centred = self._summaries(clips) - self.location_
        return np.einsum("ij,jk,ik->i", centred, self.precision_, centred)

    def explain(self, features: np.ndarray) -> Explanation:
        """Squared z-score of each log-mel column against the normal columns, per band."""
        self._check_fitted()
        stack_clips([features], self.feature_params.dims)
        return Explanation(error_map=((self._columns(features) - self.band_mean_) / self.band_std_) ** 2)

    def _save_state(self, folder: Path) -> None:
        np.savez(folder / STATE_FILE, location=self.location_, precision=self.precision_,
                 band_mean=self.band_mean_, band_std=self.band_std_)  # fmt: skip

    def _load_state(self, folder: Path) -> None:
        with np.load(folder / STATE_FILE) as state:
            self.location_, self.precision_ = state["location"], state["precision"]
            self.band_mean_, self.band_std_ = state["band_mean"], state["band_std"]
