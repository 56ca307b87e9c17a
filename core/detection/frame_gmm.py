"""A Gaussian mixture on log-mel frames: how unlikely each column is under the normal columns' mixture.

The normal clips' log-mel columns (``n_mels`` dB) are standardised per band and modelled by
scikit-learn's :class:`~sklearn.mixture.GaussianMixture` (diagonal covariances); a column's
score is its negative log-likelihood and a clip's score pools its columns' (``pooling``: mean,
max or topN, see :mod:`core.detection.pooling`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from sklearn.mixture import GaussianMixture

from core.detection.base import Detector, Explanation, stack_clips
from core.detection.pooling import check_pooling, pool_clips

STATE_FILE = "state.npz"


class FrameGMMDetector(Detector):
    """Negative log-likelihood of each log-mel column under a Gaussian mixture of normal columns, pooled per clip.

    Parameters (keyword-only)
    -------------------------
    n_components : int
        Mixture components (default 8; fewer when there are few columns).
    pooling : str
        ``"mean"``, ``"max"`` or ``"topN"`` (default ``"top10"``).
    max_frames : int
        Most normal columns the mixture is fitted on (evenly strided; default 20,000).
    seed : int
        Random state of the mixture's initialisation.
    front_end : {"log_mel", "pcen"}
        What the detector reads of each clip (:class:`~core.detection.base.FrontEnd`; default ``"log_mel"``).

    Attributes
    ----------
    mean_, scale_ : np.ndarray, float64 ``(n_mels,)``
        Per-band mean and standard deviation (dB) of the normal columns.
    mixture_ : sklearn.mixture.GaussianMixture
        The fitted mixture on standardised columns.
    decision_scores_ : np.ndarray, float64 ``(n_clips,)``
        The training clips' scores (negative log-likelihood, nats; in-sample).
    """

    name = "frame_gmm"
    description = "Gaussian mixture on log-mel frames (scikit-learn); score = pooled negative log-likelihood"

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {"n_components": 8, "pooling": "top10", "max_frames": 20_000, "seed": 0, "front_end": "log_mel"}

    def _standardised(self, features: np.ndarray) -> np.ndarray:
        return (self.columns(features) - self.mean_) / self.scale_

    def fit(self, clips: Sequence[np.ndarray], progress=None) -> Self:
        check_pooling(self.params["pooling"])
        stack_clips(clips, self.feature_params.dims)
        columns = np.concatenate([self.columns(c) for c in clips])
        self.mean_, self.scale_ = columns.mean(axis=0), columns.std(axis=0) + 1e-3
        stride = max(1, int(np.ceil(len(columns) / int(self.params["max_frames"]))))
        x = (columns[::stride] - self.mean_) / self.scale_
        components = max(1, min(int(self.params["n_components"]), len(x) // 20))
        self.mixture_ = GaussianMixture(components, covariance_type="diag", reg_covar=1e-3,
                                        random_state=int(self.params["seed"])).fit(x)  # fmt: skip
        self.decision_scores_ = self.decision_function(clips)
        if progress:
            progress(1, 1)
        return self

    def decision_function(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Pooled negative log-likelihood per clip, float64 ``(n_clips,)`` (nats)."""
        if not hasattr(self, "mixture_"):
            self._check_fitted()
        _, offsets = stack_clips(clips, self.feature_params.dims)
        x = np.concatenate([self._standardised(c) for c in clips])
        return pool_clips(-self.mixture_.score_samples(x), offsets, self.params["pooling"])

    def explain(self, features: np.ndarray) -> Explanation:
        """Squared standardised distance of each column from its most likely component's mean, per band."""
        self._check_fitted()
        stack_clips([features], self.feature_params.dims)
        x = self._standardised(features)
        component = self.mixture_.predict(x)
        error = np.square(x - self.mixture_.means_[component]) / self.mixture_.covariances_[component]
        return Explanation(error_map=error)

    def _save_state(self, folder: Path) -> None:
        m = self.mixture_
        np.savez(folder / STATE_FILE, mean=self.mean_, scale=self.scale_, weights=m.weights_, means=m.means_,
                 covariances=m.covariances_)  # fmt: skip

    def _load_state(self, folder: Path) -> None:
        with np.load(folder / STATE_FILE) as state:
            self.mean_, self.scale_ = state["mean"], state["scale"]
            mixture = GaussianMixture(len(state["weights"]), covariance_type="diag")
            mixture.weights_, mixture.means_ = state["weights"], state["means"]
            mixture.covariances_ = state["covariances"]
        mixture.precisions_cholesky_ = 1.0 / np.sqrt(mixture.covariances_)  # what scikit-learn derives when fitting
        self.mixture_ = mixture
