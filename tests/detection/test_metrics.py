"""core.detection.metrics: abnormal is the positive class; every number must agree with scikit-learn's."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from core.detection.metrics import (
    PAUC_MAX_FPR,
    Confusion,
    confusion_at,
    metrics_at,
    normal_positive_view,
    partial_auc,
    roc_auc,
    sweep,
)
from core.errors import BadInputError, Reason

SEEDS = [0, 1, 2, 3, 7]


def labelled_scores(seed: int, n: int = 120, *, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Labels (True = abnormal, about a quarter) and scores that lean higher for abnormal clips.

    With ``ties`` the scores are rounded to a few levels, so many clips share a score,
    also across the two classes.
    """
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.25
    y[:2] = [True, False]  # both classes, whatever the seed
    scores = rng.normal(size=n) + 1.2 * y
    if ties:
        scores = np.round(scores * 2) / 2
    return y, scores


def cases():
    for seed in SEEDS:
        yield pytest.param(seed, False, id=f"seed{seed}")
        yield pytest.param(seed, True, id=f"seed{seed}-ties")


@pytest.mark.parametrize(("seed", "ties"), cases())
def test_roc_auc_and_partial_auc_equal_sklearn(seed, ties):
    y, s = labelled_scores(seed, ties=ties)
    if ties:
        assert len(np.unique(s)) < len(s) / 4  # the case really has ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert partial_auc(y, s) == pytest.approx(roc_auc_score(y, s, max_fpr=0.1), abs=1e-12)
    assert partial_auc(y, s, max_fpr=0.3) == pytest.approx(roc_auc_score(y, s, max_fpr=0.3), abs=1e-12)
    assert PAUC_MAX_FPR == 0.1


def test_auc_takes_abnormal_as_positive():
    y = np.array([False, False, False, True, True])
    s = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    assert roc_auc(y, s) == 1.0
    assert roc_auc(y, -s) == 0.0
    assert roc_auc(y.astype(int), s) == 1.0  # 0/1 labels work too
    assert partial_auc(y, s) == pytest.approx(1.0)


def _thresholds_to_try(s: np.ndarray) -> np.ndarray:
    distinct = np.unique(s)
    return np.concatenate([[distinct[0] - 1.0], distinct, (distinct[:-1] + distinct[1:]) / 2, [distinct[-1] + 1.0]])


@pytest.mark.parametrize(("seed", "ties"), cases())
def test_metrics_at_equal_sklearn(seed, ties):
    y, s = labelled_scores(seed, n=30, ties=ties)
    for t in _thresholds_to_try(s):
        predicted = s > t
        m = metrics_at(y, s, t)
        assert m.threshold == t
        assert m.precision == pytest.approx(precision_score(y, predicted, zero_division=0), abs=1e-12)
        assert m.recall == pytest.approx(recall_score(y, predicted, zero_division=0), abs=1e-12)
        assert m.f1 == pytest.approx(f1_score(y, predicted, zero_division=0), abs=1e-12)
        assert m.accuracy == pytest.approx(accuracy_score(y, predicted), abs=1e-12)
        assert m.confusion == confusion_at(y, s, t)


@pytest.mark.parametrize(("seed", "ties"), cases())
def test_confusion_at_equals_sklearn_confusion_matrix(seed, ties):
    y, s = labelled_scores(seed, n=60, ties=ties)
    for t in _thresholds_to_try(s):
        (tn, fp), (fn, tp) = confusion_matrix(y, s > t, labels=[False, True])
        assert confusion_at(y, s, t) == Confusion(tp=int(tp), fp=int(fp), tn=int(tn), fn=int(fn))


def test_confusion_flags_strictly_above_the_threshold():
    y = np.array([True, True, False, False])
    s = np.array([2.0, 1.0, 1.0, 0.0])
    assert confusion_at(y, s, 1.0) == Confusion(tp=1, fp=0, tn=2, fn=1)
    assert confusion_at(y, s, 0.999) == Confusion(tp=2, fp=1, tn=1, fn=0)
    assert confusion_at(y, s, 1.0).as_dict() == {"tp": 1, "fp": 0, "tn": 2, "fn": 1}


def test_metrics_are_zero_where_undefined():
    y = np.array([True, False, False])
    s = np.array([0.5, 0.2, 0.1])
    m = metrics_at(y, s, 10.0)  # nothing flagged: precision 0/0
    assert (m.precision, m.recall, m.f1) == (0.0, 0.0, 0.0)
    assert m.accuracy == pytest.approx(2 / 3)
    none_abnormal = metrics_at([False, False], [0.1, 0.9], 0.5)  # recall 0/0
    assert (none_abnormal.recall, none_abnormal.precision, none_abnormal.f1) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(("seed", "ties"), cases())
def test_sweep_agrees_with_metrics_at_each_threshold(seed, ties):
    y, s = labelled_scores(seed, n=80, ties=ties)
    sw = sweep(y, s)
    n = len(sw.thresholds)
    assert n == len(np.unique(s)) + 1
    for name in ("tp", "fp", "tn", "fn", "precision", "recall", "f1", "accuracy"):
        assert getattr(sw, name).shape == (n,), name
    assert np.all(np.diff(sw.thresholds) > 0)
    assert np.all(s > sw.thresholds[0])  # the first threshold flags every clip
    assert not np.any(s > sw.thresholds[-1])  # the last flags none
    assert (sw.tp[0], sw.fp[0], sw.tn[0], sw.fn[0]) == (y.sum(), (~y).sum(), 0, 0)
    assert (sw.tp[-1], sw.fp[-1], sw.tn[-1], sw.fn[-1]) == (0, 0, (~y).sum(), y.sum())
    for i, t in enumerate(sw.thresholds):
        m = metrics_at(y, s, t)
        assert Confusion(int(sw.tp[i]), int(sw.fp[i]), int(sw.tn[i]), int(sw.fn[i])) == m.confusion, t
        assert sw.precision[i] == pytest.approx(m.precision, abs=1e-12)
        assert sw.recall[i] == pytest.approx(m.recall, abs=1e-12)
        assert sw.f1[i] == pytest.approx(m.f1, abs=1e-12)
        assert sw.accuracy[i] == pytest.approx(m.accuracy, abs=1e-12)


def test_sweep_of_one_score_and_of_none():
    sw = sweep([True], [3.0])
    assert sw.thresholds[-1] == 3.0 and sw.thresholds[0] < 3.0
    assert list(sw.tp) == [1, 0]
    with pytest.raises(BadInputError):
        sweep([], [])


@pytest.mark.parametrize("y", [[True, True, True], [False, False, False]], ids=["all-abnormal", "all-normal"])
def test_auc_is_nan_with_a_single_class(y):
    s = [0.1, 0.5, 0.9]
    assert math.isnan(roc_auc(y, s))
    assert math.isnan(partial_auc(y, s))


@pytest.mark.parametrize(
    "func", [roc_auc, partial_auc, lambda y, s: confusion_at(y, s, 0.5), lambda y, s: metrics_at(y, s, 0.5), sweep]
)
def test_bad_input_raises(func):
    with pytest.raises(BadInputError) as mismatch:
        func([True, False, True], [0.1, 0.2])
    assert mismatch.value.reason == Reason.INVALID_PARAMETER
    for bad in (np.nan, np.inf):
        with pytest.raises(BadInputError) as non_finite:
            func([True, False, True], [0.1, bad, 0.3])
        assert non_finite.value.reason == Reason.NON_FINITE


def test_normal_positive_view_reads_the_seed_trap_higher():
    # 100 anomalies, 78 caught; 400 normals, 20 false alarms.
    confusion = Confusion(tp=78, fp=20, tn=380, fn=22)
    y = np.r_[np.ones(100, bool), np.zeros(400, bool)]
    flagged = np.r_[np.ones(78, bool), np.zeros(22, bool), np.ones(20, bool), np.zeros(380, bool)]
    assert confusion_at(y, flagged.astype(float), 0.5) == confusion
    abnormal = metrics_at(y, flagged.astype(float), 0.5)
    assert abnormal.recall == pytest.approx(0.78)

    view = normal_positive_view(confusion)
    assert set(view) == {"precision", "recall", "f1"}
    assert view["recall"] == pytest.approx(380 / 400)  # share of normals passed
    assert view["precision"] == pytest.approx(380 / 402)  # share of passed clips that are normal
    assert view["f1"] == pytest.approx(2 * 380 / (2 * 380 + 22 + 20))
    # the same numbers as scikit-learn with normal as the positive label
    assert view["recall"] == pytest.approx(recall_score(~y, ~flagged))
    assert view["precision"] == pytest.approx(precision_score(~y, ~flagged))
    assert view["f1"] == pytest.approx(f1_score(~y, ~flagged))
    assert view["recall"] > abnormal.recall and view["f1"] > abnormal.f1  # the trap


def test_normal_positive_view_is_zero_where_undefined():
    assert normal_positive_view(Confusion(tp=3, fp=0, tn=0, fn=0)) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
