"""Detection metrics with **abnormal as the positive class**.

Pure computation.  ``y_true`` is boolean (or 0/1) with ``True`` meaning abnormal;
``scores`` are anomaly scores, higher meaning more abnormal; a clip is flagged when
``score > threshold``.

The seed reported its autoencoder with *normal* as the positive class, which made
a 78% anomaly recall read as 92%; :func:`normal_positive_view` gives those numbers
for comparison only, always labelled as such.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from core.errors import BadInputError, Reason

PAUC_MAX_FPR = 0.1


@dataclass(frozen=True)
class Confusion:
    """Counts at one threshold: true/false positives (flagged) and negatives (passed)."""

    tp: int
    fp: int
    tn: int
    fn: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class ThresholdMetrics:
    """Precision, recall, F1 and accuracy in ``[0, 1]`` at ``threshold``, with the confusion counts."""

    threshold: float
    precision: float
    recall: float
    f1: float
    accuracy: float
    confusion: Confusion


def _checked(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise BadInputError(Reason.INVALID_PARAMETER, f"{y.size} labels but {s.size} scores")
    if not np.isfinite(s).all():
        raise BadInputError(Reason.NON_FINITE, "scores contain NaN or infinite values")
    return y, s


def _has_both_classes(y: np.ndarray) -> bool:
    return bool(y.any() and not y.all())


def roc_auc(y_true, scores) -> float:
    """Area under the ROC curve in ``[0, 1]``; NaN when only one class is present."""
    y, s = _checked(y_true, scores)
    from sklearn.metrics import roc_auc_score  # loaded on first use: it takes a third of a second

    return float(roc_auc_score(y, s)) if _has_both_classes(y) else float("nan")


def partial_auc(y_true, scores, max_fpr: float = PAUC_MAX_FPR) -> float:
    """ROC AUC up to ``max_fpr``, McClish-standardised as scikit-learn does (0.5 = chance, 1 = perfect)."""
    y, s = _checked(y_true, scores)
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s, max_fpr=max_fpr)) if _has_both_classes(y) else float("nan")


def confusion_at(y_true, scores, threshold: float) -> Confusion:
    """Confusion counts when clips with ``score > threshold`` are flagged abnormal."""
    y, s = _checked(y_true, scores)
    flagged = s > threshold
    tp = int(np.count_nonzero(flagged & y))
    fp = int(np.count_nonzero(flagged & ~y))
    fn = int(np.count_nonzero(~flagged & y))
    return Confusion(tp=tp, fp=fp, tn=y.size - tp - fp - fn, fn=fn)


def _ratio(num, den):
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def metrics_at(y_true, scores, threshold: float) -> ThresholdMetrics:
    """Precision, recall, F1, accuracy (0 where undefined, as scikit-learn's ``zero_division=0``)."""
    c = confusion_at(y_true, scores, threshold)
    precision = float(_ratio(c.tp, c.tp + c.fp))
    recall = float(_ratio(c.tp, c.tp + c.fn))
    f1 = float(_ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn))
    accuracy = float(_ratio(c.tp + c.tn, c.tp + c.tn + c.fp + c.fn))
    return ThresholdMetrics(float(threshold), precision, recall, f1, accuracy, c)


@dataclass(frozen=True)
class Sweep:
    """Metrics at every distinct threshold, arrays of the same length ``(n_thresholds,)``.

    ``thresholds`` ascend; the first one flags every clip, the last flags none.
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    tn: np.ndarray
    fn: np.ndarray

    @property
    def precision(self) -> np.ndarray:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> np.ndarray:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> np.ndarray:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def accuracy(self) -> np.ndarray:
        return _ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn)


def sweep(y_true, scores) -> Sweep:
    """Confusion counts at each candidate threshold, in one sort (O(n log n)).

    Candidates: just below the lowest score (everything flagged), then each distinct
    score (everything strictly above it flagged).
    """
    y, s = _checked(y_true, scores)
    if s.size == 0:
        raise BadInputError(Reason.INVALID_PARAMETER, "no scores to sweep")
    order = np.argsort(s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    distinct = np.unique(s_sorted)
    # number of clips with score <= t, for each distinct t
    passed = np.searchsorted(s_sorted, distinct, side="right")
    abnormal_passed = np.concatenate(([0], np.cumsum(y_sorted)))[passed]
    n_abnormal = int(y.sum())
    n_normal = y.size - n_abnormal
    thresholds = np.concatenate(([np.nextafter(distinct[0], -np.inf)], distinct))
    fn = np.concatenate(([0], abnormal_passed))
    tn = np.concatenate(([0], passed - abnormal_passed))
    return Sweep(thresholds, tp=n_abnormal - fn, fp=n_normal - tn, tn=tn, fn=fn)


def normal_positive_view(confusion: Confusion) -> dict[str, float]:
    """The seed's convention (normal as positive), for comparison only: precision, recall, F1 of *normal*."""
    flipped = Confusion(tp=confusion.tn, fp=confusion.fn, tn=confusion.tp, fn=confusion.fp)
    precision = float(_ratio(flipped.tp, flipped.tp + flipped.fp))
    recall = float(_ratio(flipped.tp, flipped.tp + flipped.fn))
    return {
        "precision": precision,
        "recall": recall,
        "f1": float(_ratio(2 * flipped.tp, 2 * flipped.tp + flipped.fp + flipped.fn)),
    }
