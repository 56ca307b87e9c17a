"""Clip-level per-band deviation: how far a clip's mean log-mel level strays from the normal clips' spread.

Each clip is summarised by its mean level per mel band (dB).  Fitting keeps the normal
clips' mean ``location_`` and spread ``spread_`` per band; a clip's per-band deviation is
``|level - location_| / spread_`` and its score pools the bands: the largest (``"max"``,
a fault confined to a few bands) or their mean (``"mean"``).  Trains in milliseconds;
needs at least 3 normal clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from core.detection.base import Detector, Explanation, stack_clips
from core.errors import BadInputError, Reason

STATE_FILE = "state.npz"
BAND_POOLINGS = ("max", "mean")


class BandDeviationDetector(Detector):
    """Largest (or mean) per-band deviation of a clip's mean log-mel level, in normal spreads.

    Parameters (keyword-only)
    -------------------------
    pooling : {"max", "mean"}
        How the per-band deviations become one score (default ``"max"``).
    min_spread_db : float
        Floor of a band's spread (dB), so a band that barely varies over few clips cannot dominate.
    front_end : {"log_mel", "pcen"}
        What the detector reads of each clip (:class:`~core.detection.base.FrontEnd`; default ``"log_mel"``).

    Attributes
    ----------
    location_ : np.ndarray, float64 ``(n_mels,)``
        Mean over the normal clips of each clip's mean level per band (dB).
    spread_ : np.ndarray, float64 ``(n_mels,)``
        Standard deviation over the normal clips of those levels plus ``min_spread_db`` (dB).
    decision_scores_ : np.ndarray, float64 ``(n_clips,)``
        The training clips' scores (in spreads; in-sample).
    """

    name = "band_deviation"
    poolings = BAND_POOLINGS
    description = "largest per-band deviation of a clip's mean log-mel level from the normal spread (max or mean)"
    explanation_version = 2  # 1: squared column deviations in clip-level spreads, far above the score's scale

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {"pooling": "max", "min_spread_db": 0.1, "front_end": "log_mel"}

    def _levels(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        stack_clips(clips, self.feature_params.dims)  # validates shapes
        return np.array([self.columns(c).mean(axis=0) for c in clips])

    def fit(self, clips: Sequence[np.ndarray], progress=None) -> Self:
        if self.params["pooling"] not in BAND_POOLINGS:
            pooling = self.params["pooling"]
            raise BadInputError(Reason.INVALID_PARAMETER, f"pooling must be max or mean, got {pooling!r}")
        if len(clips) < 3:
            raise BadInputError(Reason.INVALID_PARAMETER, f"need at least 3 normal clips, got {len(clips)}")
        levels = self._levels(clips)
        self.location_ = levels.mean(axis=0)
        self.spread_ = levels.std(axis=0) + float(self.params["min_spread_db"])
        self.decision_scores_ = self.decision_function(clips)
        if progress:
            progress(1, 1)
        return self

    def decision_function(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Pooled per-band deviation per clip, float64 ``(n_clips,)``, in normal spreads."""
        if not hasattr(self, "spread_"):
            self._check_fitted()
        deviation = np.abs(self._levels(clips) - self.location_) / self.spread_
        return deviation.max(axis=1) if self.params["pooling"] == "max" else deviation.mean(axis=1)

    def explain(self, features: np.ndarray) -> Explanation:
        """The score taken apart over bands and time, ``(n_vectors, n_mels)``, float64, in normal spreads.

        Band ``j``'s error is the clip's deviation there, ``|level_j - location_j| / spread_j``, the very figure
        the score pools: with ``"max"`` pooling the largest band error is the score, with ``"mean"`` their mean
        is.  Over time each column weighs by how far it pulls along the clip's signed deviation ``d`` (its own
        standardised deviation dotted with ``d``; pulls towards normal count zero), the weights averaging 1, so
        the frame errors average to the mean band error."""
        self._check_fitted()
        stack_clips([features], self.feature_params.dims)
        columns = (self.columns(features) - self.location_) / self.spread_
        deviation = columns.mean(axis=0)
        pull = np.maximum(columns @ deviation, 0.0)
        weights = pull / pull.mean() if pull.mean() > 0 else np.ones(len(columns))
        return Explanation(error_map=np.outer(weights, np.abs(deviation)))

    def _save_state(self, folder: Path) -> None:
        np.savez(folder / STATE_FILE, location=self.location_, spread=self.spread_)

    def _load_state(self, folder: Path) -> None:
        with np.load(folder / STATE_FILE) as state:
            self.location_, self.spread_ = state["location"], state["spread"]
