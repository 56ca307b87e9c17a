"""A fast statistical detector: Mahalanobis distance of a clip's log-mel statistics.

Each clip is summarised by the mean and standard deviation over time of every mel
band (``2 * n_mels`` values, dB).  The normal clips' summaries give a mean and a
shrunk (Ledoit-Wolf) covariance; a clip's score is its squared Mahalanobis
distance from them.  Trains in milliseconds; needs at least 3 normal clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from sklearn.covariance import LedoitWolf

from core.detection.base import Detector, Explanation, stack_clips
from core.errors import BadInputError, Reason

STATE_FILE = "state.npz"


class MahalanobisDetector(Detector):
    """Squared Mahalanobis distance of a clip's per-band mean and spread from the normal clips'.

    Parameters (keyword-only)
    -------------------------
    front_end : {"log_mel", "pcen"}
        What the detector reads of each clip (:class:`~core.detection.base.FrontEnd`; default ``"log_mel"``).

    Attributes
    ----------
    location_ : np.ndarray, float64 ``(2 * n_mels,)``
        Mean of the normal clips' summaries (per-band mean, then per-band standard deviation over time).
    precision_ : np.ndarray, float64 ``(2 * n_mels, 2 * n_mels)``
        The inverse of their shrunk (Ledoit-Wolf) covariance.
    decision_scores_ : np.ndarray, float64 ``(n_clips,)``
        The training clips' scores (in-sample).
    """

    name = "mahalanobis"
    description = "Mahalanobis distance of per-band log-mel mean and spread; trains in milliseconds"
    explanation_version = 2  # 1: per-column z-scores, which did not follow the score

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {"front_end": "log_mel"}

    def _summaries(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        stack_clips(clips, self.feature_params.dims)  # validates shapes
        columns = (self.columns(c) for c in clips)
        return np.array([np.r_[c.mean(axis=0), c.std(axis=0)] for c in columns])

    def fit(self, clips: Sequence[np.ndarray], progress=None) -> Self:
        if len(clips) < 3:
            raise BadInputError(Reason.INVALID_PARAMETER, f"need at least 3 normal clips, got {len(clips)}")
        summaries = self._summaries(clips)
        estimator = LedoitWolf().fit(summaries)
        self.location_ = estimator.location_
        self.precision_ = estimator.precision_
        self._root = None  # P^(1/2), see root_
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
        """The score taken apart over bands and time, ``(n_vectors, n_mels)``, float64, in the score's units.

        The score is ``|w|^2`` with ``w = P^(1/2) c``, ``c`` the clip's per-band level and spread less the
        training clips' centre and ``P`` their precision: band ``j``'s share is ``w_j^2`` of its level plus that
        of its spread, never negative, and the band errors are these shares: they add up to the score.  Over
        time each column weighs by how far it pulls along ``w`` (its own level deviation and squared distance
        from the clip's mean level over the clip's spread, which average to ``c``; pulls towards normal count
        zero), the weights averaging 1, so the frame errors average to ``score / n_mels``."""
        self._check_fitted()
        stack_clips([features], self.feature_params.dims)
        columns = self.columns(features)
        n_mels = columns.shape[1]
        level, spread = columns.mean(axis=0), columns.std(axis=0)
        column_spread = (columns - level) ** 2 / np.maximum(spread, 1e-6)  # averages to the clip's spread
        per_column = np.c_[columns - self.location_[:n_mels], column_spread - self.location_[n_mels:]] @ self.root_
        w = per_column.mean(axis=0)  # = P^(1/2) c
        shares = w[:n_mels] ** 2 + w[n_mels:] ** 2
        pull = np.maximum(per_column @ w, 0.0)
        weights = pull / pull.mean() if pull.mean() > 0 else np.ones(len(columns))
        return Explanation(error_map=np.outer(weights, shares))

    @property
    def root_(self) -> np.ndarray:
        """``P^(1/2)``, the symmetric square root of the precision, ``(2 n_mels, 2 n_mels)``: computed once."""
        if getattr(self, "_root", None) is None:
            values, vectors = np.linalg.eigh(self.precision_)
            self._root = (vectors * np.sqrt(np.maximum(values, 0.0))) @ vectors.T
        return self._root

    def _save_state(self, folder: Path) -> None:
        np.savez(folder / STATE_FILE, location=self.location_, precision=self.precision_)

    def _load_state(self, folder: Path) -> None:
        with np.load(folder / STATE_FILE) as state:
            self.location_, self.precision_ = state["location"], state["precision"]  # older files hold more
        self._root = None
