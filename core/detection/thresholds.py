"""Suggesting a decision threshold on anomaly scores (higher = more abnormal; flag when ``score > t``).

Pure computation.  Without labels: a gamma distribution fitted to the normal
training scores, at a quantile (0.9 by default, as the DCASE baselines do), or, from
few held-out normal scores, an upper prediction bound that keeps the stated share of
flagged normal clips whatever their number (:func:`prediction_threshold`).  With
labels (``y_true`` True = abnormal): maximum F1, a target recall or precision, or
minimum expected cost given the cost of a missed anomaly and of a false alarm.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from core.detection.metrics import sweep
from core.errors import BadInputError, Reason

DEFAULT_QUANTILE = 0.9
METHODS = ("gamma", "max_f1", "target_recall", "target_precision", "min_cost")
# how a saved threshold's method reads on the pages (the codes stay in the database, the CLI and the JSON)
METHOD_NAMES = {"gamma": "gamma fit", "max_f1": "max F1", "target_recall": "target recall",
                "target_precision": "target precision", "min_cost": "min cost", "manual": "set by hand",
                "prediction_bound": "prediction bound"}  # fmt: skip


def method_name(method: str) -> str:
    """A threshold method as people read it (``max_f1`` -> ``max F1``); an unknown code as it is."""
    return METHOD_NAMES.get(method, method)


def gamma_threshold(normal_scores, quantile: float = DEFAULT_QUANTILE) -> float:
    """The ``quantile`` of a gamma distribution fitted to ``normal_scores``.

    The three-parameter fit (shape, location, scale) of the DCASE baselines comes
    first.  When it is degenerate (shape below 1 puts the density's pole on the
    lowest score) or disagrees with the data (the share of scores below the threshold
    is far from ``quantile``), a fit with location 0 is tried, then the empirical
    quantile is used.
    """
    s = _checked_scores(normal_scores, quantile, "to fit a gamma")
    if np.ptp(s) == 0:
        return float(s[0])
    tolerance = max(0.1, 3 * np.sqrt(quantile * (1 - quantile) / s.size))
    fits = [{}] + ([{"floc": 0.0}] if s.min() > 0 else [])
    for fixed in fits:
        value = _gamma_quantile(s, quantile, fixed)
        if value is not None and abs(np.mean(s <= value) - quantile) <= tolerance:
            return value
    return float(np.quantile(s, quantile))


def _checked_scores(normal_scores, quantile: float, purpose: str) -> np.ndarray:
    """``normal_scores`` as float64 ``(n,)``; BadInputError unless ``quantile`` is in (0, 1) and there are at least
    2 scores, all finite."""
    s = np.asarray(normal_scores, dtype=np.float64).ravel()
    if not 0.0 < quantile < 1.0:
        raise BadInputError(Reason.INVALID_PARAMETER, f"quantile must be in (0, 1), got {quantile}")
    if s.size < 2 or not np.isfinite(s).all():
        raise BadInputError(Reason.INVALID_PARAMETER, f"need at least 2 finite normal scores {purpose}")
    return s


def prediction_threshold(normal_scores, quantile: float = DEFAULT_QUANTILE) -> float:
    """The upper ``quantile`` prediction bound of a new normal score, from ``normal_scores`` ``(n,)`` (n >= 2).

    A plug-in quantile fitted to few scores (a gamma fit to 6 of them, say) sits too low on average: the
    fit's own error is ignored, and a new normal clip exceeds it far more often than ``1 - quantile``.  The
    prediction bound accounts for it: with ``x`` the scores (their logarithms when every score is positive,
    as anomaly scores are right-skewed), mean ``m`` and standard deviation ``s`` (ddof 1),

        bound = m + t_{n-1}(quantile) * s * sqrt(1 + 1/n)

    (Student's t quantile with n - 1 degrees of freedom), and a new score from the same normal (log-normal)
    distribution exceeds it with probability exactly ``1 - quantile`` for any ``n`` (Hahn & Meeker,
    *Statistical Intervals*, 2nd ed., sec. 4.6).  Returns the bound in the scores' units (float).
    """
    s = _checked_scores(normal_scores, quantile, "for a prediction bound")
    if np.ptp(s) == 0:
        return float(s[0])
    import scipy.stats  # loaded here: a second of start-up every CLI command would otherwise pay

    log = bool(s.min() > 0)
    x = np.log(s) if log else s
    bound = x.mean() + scipy.stats.t.ppf(quantile, x.size - 1) * x.std(ddof=1) * np.sqrt(1.0 + 1.0 / x.size)
    return float(np.exp(bound) if log else bound)


def _gamma_quantile(s: np.ndarray, quantile: float, fixed: dict) -> float | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            import scipy.stats  # loaded here: a second of start-up every CLI command would otherwise pay

            shape, loc, scale = scipy.stats.gamma.fit(s, **fixed)
            value = float(scipy.stats.gamma.ppf(quantile, shape, loc=loc, scale=scale))
        except (ValueError, RuntimeError, FloatingPointError):
            return None
    return value if np.isfinite(value) and shape >= 1.0 else None


def _check_target(target: float) -> None:
    if not 0.0 <= target <= 1.0:
        raise BadInputError(Reason.INVALID_PARAMETER, f"a target recall or precision is in [0, 1], got {target}")


def _labelled(y_true, scores):
    sw = sweep(y_true, scores)
    if not sw.tp[0]:
        raise BadInputError(Reason.INVALID_PARAMETER, "no abnormal clips among the labelled ones")
    if not sw.fp[0]:
        raise BadInputError(Reason.INVALID_PARAMETER, "no normal clips among the labelled ones")
    return sw


def max_f1_threshold(y_true, scores) -> float:
    """The threshold with the highest F1 (the highest such threshold on ties)."""
    sw = _labelled(y_true, scores)
    f1 = sw.f1
    return float(sw.thresholds[np.flatnonzero(f1 == f1.max())[-1]])


def target_recall_threshold(y_true, scores, target: float) -> float:
    """The highest threshold whose recall (share of anomalies flagged) is at least ``target``."""
    _check_target(target)
    sw = _labelled(y_true, scores)
    return float(sw.thresholds[np.flatnonzero(sw.recall >= target)[-1]])


def target_precision_threshold(y_true, scores, target: float) -> float:
    """The lowest threshold whose precision (share of flags that are anomalies) is at least ``target``."""
    _check_target(target)
    sw = _labelled(y_true, scores)
    ok = np.flatnonzero((sw.precision >= target) & (sw.tp + sw.fp > 0))
    if ok.size == 0:
        raise BadInputError(Reason.INVALID_PARAMETER, f"no threshold reaches precision {target:g}")
    return float(sw.thresholds[ok[0]])


def min_cost_threshold(y_true, scores, cost_miss: float, cost_false_alarm: float) -> float:
    """The threshold minimising ``cost_miss * FN + cost_false_alarm * FP`` (the highest on ties)."""
    if cost_miss < 0 or cost_false_alarm < 0:
        raise BadInputError(Reason.INVALID_PARAMETER, "costs must be non-negative")
    sw = _labelled(y_true, scores)
    cost = cost_miss * sw.fn + cost_false_alarm * sw.fp
    return float(sw.thresholds[np.flatnonzero(cost == cost.min())[-1]])


MOST_DIGITS = 17  # a float64 reads back exactly with 17 significant digits


def rounded_threshold(value: float, scores, digits: int = 4) -> float:
    """``value`` rounded to the nearest with as few significant digits as it takes, ``digits`` at least, to flag the
    same of ``scores`` (``score > t``) as ``value`` does: a suggestion sits on a score, which rounding down would flag,
    so it takes a digit more (``18.2904``, not ``18.29``), never the other way (``18.3``): a threshold at a score reads
    as the score does (``9.0454`` at 9.04537, which reads ``9.045``; rounded up it read ``9.046``).  The digits are
    those of correctly rounded formatting, as the pages write numbers (``395.85`` -> ``395.9``; a tie to even).
    Returns a float that reads back as its digits (``18.29``); ``value`` itself when it is 0 or not finite."""
    if value == 0 or not math.isfinite(value):
        return float(value)
    s = np.asarray(scores, dtype=np.float64)
    flagged = s > value
    for n in range(digits, MOST_DIGITS + 1):
        candidate = float(f"{value:.{n - 1}e}")
        if np.array_equal(s > candidate, flagged):
            return candidate
    return float(value)
