"""Frame k-nearest neighbours: how far each log-mel column lies from the nearest normal columns.

The normal clips' log-mel columns (``n_mels`` dB each) are standardised per band and
indexed (scikit-learn's :class:`~sklearn.neighbors.NearestNeighbors`); a column's score is
its Euclidean distance to its ``n_neighbors``-th nearest normal column, in standardised
units, and a clip's score pools its columns' (``pooling``: mean, max or topN, see
:mod:`core.detection.pooling`).  At most ``max_reference`` normal columns are kept (evenly
strided), which bounds memory and scoring time on large training sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from sklearn.neighbors import NearestNeighbors

from core.detection.base import Detector, Explanation, stack_clips
from core.detection.pooling import check_pooling, pool_clips
from core.errors import NotFittedError

STATE_FILE = "state.npz"
SCORE_FOLDS = 5  # the training clips' own scores are out of fold (see FrameKNNDetector.decision_scores_)


class FrameKNNDetector(Detector):
    """Distance of each log-mel column to its k-th nearest normal column, pooled per clip.

    Parameters (keyword-only)
    -------------------------
    n_neighbors : int
        Which neighbour's distance is the column's score (default 1).
    pooling : str
        ``"mean"``, ``"max"`` or ``"topN"`` (default ``"top10"``: the mean of the largest 10%).
    max_reference : int
        Most normal columns kept as the reference set (default 20,000).
    front_end : {"log_mel", "pcen"}
        What the detector reads of each clip (:class:`~core.detection.base.FrontEnd`; default ``"log_mel"``).

    Attributes
    ----------
    mean_, scale_ : np.ndarray, float64 ``(n_mels,)``
        Per-band mean and standard deviation (dB) of the normal columns.
    reference_ : np.ndarray, float32 ``(n_reference, n_mels)``
        The standardised normal columns searched.
    decision_scores_ : np.ndarray, float64 ``(n_clips,)``
        The training clips' scores, out of fold: each clip against a reference of the other clips (in-sample a
        column's nearest neighbour is itself, so every score would be near zero), so that a threshold fitted
        to them suits new clips.  ``decision_function`` of a training clip stays in-sample, near zero.
    folds_ : list of FrameKNNDetector
        After :meth:`fit_folds` only: per cross-validation fold, a detector fitted on the clips outside it (no
        ``decision_scores_``).
    """

    name = "frame_knn"
    description = "distance of each log-mel frame to its nearest normal frames (scikit-learn kNN), top-10% pooled"

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {"n_neighbors": 1, "pooling": "top10", "max_reference": 20_000, "front_end": "log_mel"}

    def _standardised(self, features: np.ndarray) -> np.ndarray:
        return ((self.columns(features) - self.mean_) / self.scale_).astype(np.float32)

    def fit(self, clips: Sequence[np.ndarray], progress=None) -> Self:
        self._fit_reference(clips)
        self.decision_scores_ = self._out_of_fold_scores(clips)
        if progress:
            progress(1, 1)
        return self

    def _out_of_fold_scores(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Each training clip's score against a reference of the *other* clips, float64 ``(n_clips,)``
        (:data:`SCORE_FOLDS` contiguous folds; in-sample for a single clip).  In-sample, every column would find
        itself and score about 0, and a threshold fitted to such scores would flag every new clip."""
        if len(clips) < 2:
            return self.decision_function(clips)
        folds = np.array_split(np.arange(len(clips)), min(SCORE_FOLDS, len(clips)))
        scores = np.empty(len(clips))
        for fold, detector in zip(folds, self._fold_references(clips, folds), strict=True):
            scores[fold] = detector.decision_function([clips[i] for i in fold])
        return scores

    def _fit_reference(self, clips: Sequence[np.ndarray]) -> Self:
        """``mean_``, ``scale_``, ``reference_`` and the index from ``clips``: all of :meth:`fit` but the scores."""
        check_pooling(self.params["pooling"])
        stack_clips(clips, self.feature_params.dims)
        columns = np.concatenate([self.columns(c) for c in clips])
        self.mean_, self.scale_ = columns.mean(axis=0), columns.std(axis=0) + 1e-3
        stride = max(1, int(np.ceil(len(columns) / int(self.params["max_reference"]))))
        self.reference_ = ((columns[::stride] - self.mean_) / self.scale_).astype(np.float32)
        self._index()
        return self

    def fit_folds(self, clips: Sequence[np.ndarray], folds: Sequence[np.ndarray], *,
                  others: Sequence[Sequence[np.ndarray]] = ()) -> Self:  # fmt: skip
        """Cross-validation only: per fold (indices into ``clips``), what :meth:`fit` learns from the clips outside
        it, without scoring those training clips (``decision_scores_``, a third of the fit's time, which
        cross-validation never reads); ``others`` is not used.  Sets ``folds_``; score with
        :meth:`fold_decision_function`."""
        self.folds_ = self._fold_references(clips, folds)
        return self

    def _fold_references(self, clips: Sequence[np.ndarray], folds: Sequence[np.ndarray]) -> list[Self]:
        """Per fold (indices into ``clips``), a detector with the reference of the clips outside it (unscored)."""
        out = []
        for fold in folds:
            held = set(np.asarray(fold).tolist())
            train = [c for i, c in enumerate(clips) if i not in held]
            out.append(type(self)(self.feature_params, **self.params)._fit_reference(train))
        return out

    def fold_decision_function(self, fold: int, clips: Sequence[np.ndarray]) -> np.ndarray:
        """:meth:`decision_function` of fold ``fold``'s reference (:meth:`fit_folds`), float64 ``(n_clips,)``."""
        if not hasattr(self, "folds_"):
            raise NotFittedError(f"the {self.name} detector has no fold references: call fit_folds first")
        return self.folds_[int(fold)].decision_function(clips)

    def _index(self) -> None:
        k = min(int(self.params["n_neighbors"]), len(self.reference_))
        self.index_ = NearestNeighbors(n_neighbors=k).fit(self.reference_)

    def _distances(self, x: np.ndarray) -> np.ndarray:
        """Distance of each standardised column ``(n, n_mels)`` to its k-th nearest reference column."""
        return self.index_.kneighbors(x)[0][:, -1].astype(np.float64)

    def decision_function(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Pooled k-th neighbour distance per clip, float64 ``(n_clips,)``, in standardised units."""
        if not hasattr(self, "index_"):
            self._check_fitted()
        _, offsets = stack_clips(clips, self.feature_params.dims)
        x = np.concatenate([self._standardised(c) for c in clips])
        return pool_clips(self._distances(x), offsets, self.params["pooling"])

    def explain(self, features: np.ndarray) -> Explanation:
        """Squared standardised difference of each column from its nearest normal column, per band."""
        self._check_fitted()
        stack_clips([features], self.feature_params.dims)
        x = self._standardised(features)
        nearest = self.reference_[self.index_.kneighbors(x, n_neighbors=1)[1][:, 0]]
        return Explanation(error_map=np.square(x - nearest).astype(np.float64))

    def _save_state(self, folder: Path) -> None:
        np.savez(folder / STATE_FILE, mean=self.mean_, scale=self.scale_, reference=self.reference_)

    def _load_state(self, folder: Path) -> None:
        with np.load(folder / STATE_FILE) as state:
            self.mean_, self.scale_, self.reference_ = state["mean"], state["scale"], state["reference"]
        self._index()
