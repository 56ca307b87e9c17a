"""core.detection.thresholds: the gamma fit is scipy's, and every labelled method matches a brute-force search."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from core.detection.metrics import metrics_at
from core.detection.thresholds import (
    DEFAULT_QUANTILE,
    METHODS,
    gamma_threshold,
    max_f1_threshold,
    min_cost_threshold,
    prediction_threshold,
    rounded_threshold,
    target_precision_threshold,
    target_recall_threshold,
)
from core.errors import BadInputError

SEEDS = [0, 1, 2, 5, 11]


# --- gamma (no labels) -------------------------------------------------------------------------


@pytest.mark.parametrize("quantile", [0.5, DEFAULT_QUANTILE, 0.99])
@pytest.mark.parametrize("seed", [0, 1])
def test_gamma_threshold_is_the_quantile_of_scipys_gamma_fit(seed, quantile):
    scores = np.random.default_rng(seed).gamma(3.0, 2.0, size=300) + 5.0
    shape, loc, scale = scipy.stats.gamma.fit(scores)
    expected = scipy.stats.gamma.ppf(quantile, shape, loc=loc, scale=scale)
    assert gamma_threshold(scores, quantile) == pytest.approx(expected, rel=1e-9)
    assert DEFAULT_QUANTILE == 0.9
    assert gamma_threshold(scores) == pytest.approx(scipy.stats.gamma.ppf(0.9, shape, loc=loc, scale=scale), rel=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("shape", "loc", "scale"), [(2.0, 0.0, 1.5), (5.0, 2.0, 0.3), (9.0, 10.0, 4.0)])
def test_gamma_threshold_recovers_a_known_quantile(seed, shape, loc, scale):
    scores = np.random.default_rng(seed).gamma(shape, scale, size=5000) + loc
    true = scipy.stats.gamma.ppf(0.9, shape, loc=loc, scale=scale)
    assert gamma_threshold(scores, 0.9) == pytest.approx(true, rel=0.05)
    # and it flags about 10% of the normal scores it was fitted on
    assert np.mean(scores > gamma_threshold(scores, 0.9)) == pytest.approx(0.1, abs=0.02)


def test_gamma_threshold_falls_back_when_the_fit_is_degenerate():
    scores = np.random.default_rng(6).gamma(2.0, 10.0, size=100)  # an ordinary gamma sample
    threshold = gamma_threshold(scores, 0.9)
    assert np.mean(scores > threshold) <= 0.2  # observed: 0.89 (threshold 5.7; empirical 0.9 quantile 35.0)


# --- prediction bound (few held-out normal scores) -------------------------------------------------


@pytest.mark.parametrize(("n", "positive"), [(6, True), (6, False), (12, True), (3, False)])
def test_prediction_threshold_flags_the_stated_share_of_new_normal_scores_whatever_n(n, positive):
    rng = np.random.default_rng(n)
    draws = rng.normal(0.0, 1.0, size=(4000, n + 1))
    samples = np.exp(draws) * 3.0 if positive else draws * 2.0 - 1.0  # log-normal, or normal with negatives
    bounds = np.array([prediction_threshold(row[:n], 0.9) for row in samples])
    flagged = np.mean(samples[:, n] > bounds)  # one new normal score per sample of n
    assert flagged == pytest.approx(0.1, abs=0.015)  # observed within 0.01 of 0.1 for each n
    # the plug-in quantile of the same fit (no small-sample correction) flags far more when n is small
    plug_in = np.array([np.mean(np.log(r[:n]) if positive else r[:n])
                        + scipy.stats.norm.ppf(0.9) * np.std(np.log(r[:n]) if positive else r[:n], ddof=1)
                        for r in samples])  # fmt: skip
    plug_in = np.exp(plug_in) if positive else plug_in
    assert np.mean(samples[:, n] > plug_in) > flagged + (0.02 if n <= 6 else 0.005)


def test_prediction_threshold_is_the_t_bound_on_log_scores_when_every_score_is_positive():
    scores = np.array([0.8, 1.1, 1.3, 0.9, 2.0, 1.2])
    x = np.log(scores)
    expected = np.exp(x.mean() + scipy.stats.t.ppf(0.9, 5) * x.std(ddof=1) * np.sqrt(1 + 1 / 6))
    assert prediction_threshold(scores, 0.9) == pytest.approx(expected, rel=1e-12)
    shifted = scores - 1.0  # a non-positive score: the raw scale
    raw = shifted.mean() + scipy.stats.t.ppf(0.9, 5) * shifted.std(ddof=1) * np.sqrt(1 + 1 / 6)
    assert prediction_threshold(shifted, 0.9) == pytest.approx(raw, rel=1e-12)
    assert prediction_threshold([2.0, 2.0, 2.0]) == 2.0
    for bad in ([], [1.0], [1.0, np.nan]):
        with pytest.raises(BadInputError):
            prediction_threshold(bad)
    with pytest.raises(BadInputError):
        prediction_threshold(scores, 1.0)


@pytest.mark.parametrize("quantile", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_gamma_threshold_refuses_a_quantile_outside_0_1(quantile):
    with pytest.raises(BadInputError):
        gamma_threshold(np.arange(1.0, 50.0), quantile)


@pytest.mark.parametrize("scores", [[], [3.0], [1.0, np.nan, 2.0], [1.0, np.inf]], ids=["none", "one", "nan", "inf"])
def test_gamma_threshold_refuses_too_few_or_non_finite_scores(scores):
    with pytest.raises(BadInputError):
        gamma_threshold(scores)


def test_gamma_threshold_of_constant_scores_is_that_constant():
    assert gamma_threshold([4.25] * 10) == 4.25
    assert gamma_threshold(np.full(2, -1.5), 0.99) == -1.5


# --- labelled methods: brute force over every candidate threshold ------------------------------


def labelled_scores(seed: int, n: int = 50, *, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    y[:2] = [True, False]
    s = rng.normal(size=n) + 1.0 * y
    return y, (np.round(s * 2) / 2 if ties else s)


def cases():
    for seed in SEEDS:
        yield pytest.param(seed, False, id=f"seed{seed}")
        yield pytest.param(seed, True, id=f"seed{seed}-ties")


def candidates(s: np.ndarray) -> np.ndarray:
    """Every distinct decision, ascending: below the lowest score (flag all), then each distinct score."""
    distinct = np.unique(s)
    return np.r_[distinct[0] - 1.0, distinct]


def assert_same_decision(result: float, expected: float, s: np.ndarray) -> None:
    """``result`` makes the decision that ``expected`` makes; equal to it when it is one of the scores."""
    np.testing.assert_array_equal(s > result, s > expected)
    if expected >= s.min():
        assert result == expected
    else:
        assert result < s.min()


def brute(y, s):
    ts = candidates(s)
    return ts, [metrics_at(y, s, t) for t in ts]


@pytest.mark.parametrize(("seed", "ties"), cases())
def test_max_f1_threshold_matches_brute_force(seed, ties):
    y, s = labelled_scores(seed, ties=ties)
    ts, ms = brute(y, s)
    best = max(m.f1 for m in ms)
    expected = max(t for t, m in zip(ts, ms, strict=True) if m.f1 == best)  # the highest on ties
    result = max_f1_threshold(y, s)
    assert_same_decision(result, expected, s)
    assert metrics_at(y, s, result).f1 == best


@pytest.mark.parametrize("target", [0.0, 0.3, 0.5, 0.8, 0.95, 1.0])
@pytest.mark.parametrize(("seed", "ties"), cases())
def test_target_recall_threshold_matches_brute_force(seed, ties, target):
    y, s = labelled_scores(seed, ties=ties)
    ts, ms = brute(y, s)
    expected = max(t for t, m in zip(ts, ms, strict=True) if m.recall >= target)
    result = target_recall_threshold(y, s, target)
    assert_same_decision(result, expected, s)
    assert metrics_at(y, s, result).recall >= target


@pytest.mark.parametrize("target", [0.3, 0.5, 0.7, 0.9])
@pytest.mark.parametrize(("seed", "ties"), cases())
def test_target_precision_threshold_matches_brute_force(seed, ties, target):
    y, s = labelled_scores(seed, ties=ties)
    ts, ms = brute(y, s)
    ok = [t for t, m in zip(ts, ms, strict=True) if m.precision >= target and m.confusion.tp + m.confusion.fp > 0]
    if not ok:
        with pytest.raises(BadInputError):
            target_precision_threshold(y, s, target)
        return
    result = target_precision_threshold(y, s, target)
    assert_same_decision(result, min(ok), s)  # the lowest that reaches it
    assert metrics_at(y, s, result).precision >= target


@pytest.mark.parametrize(("cost_miss", "cost_false_alarm"), [(1.0, 1.0), (10.0, 1.0), (1.0, 10.0), (0.0, 1.0)])
@pytest.mark.parametrize(("seed", "ties"), cases())
def test_min_cost_threshold_matches_brute_force(seed, ties, cost_miss, cost_false_alarm):
    y, s = labelled_scores(seed, ties=ties)
    ts, ms = brute(y, s)
    costs = [cost_miss * m.confusion.fn + cost_false_alarm * m.confusion.fp for m in ms]
    expected = max(t for t, c in zip(ts, costs, strict=True) if c == min(costs))  # the highest on ties
    assert_same_decision(min_cost_threshold(y, s, cost_miss, cost_false_alarm), expected, s)


def test_ties_go_to_the_highest_threshold():
    # F1 is 2/3 both when everything is flagged and when only the top clip is: the higher threshold wins.
    y = np.array([True, False, False, True])
    s = np.array([1.0, 2.0, 3.0, 4.0])
    assert metrics_at(y, s, 0.0).f1 == metrics_at(y, s, 3.0).f1 == pytest.approx(2 / 3)
    assert max_f1_threshold(y, s) == 3.0
    # cost 2 per miss, 1 per false alarm: 2 both when everything is flagged and at 3.0
    assert min_cost_threshold(y, s, 2.0, 1.0) == 3.0
    # recall 1/2 at 2.0 and at 3.0: the highest
    assert target_recall_threshold(y, s, 0.5) == 3.0
    # precision >= 1/2 first reached when everything is flagged: the lowest
    assert target_precision_threshold(y, s, 0.5) < 1.0


def test_target_precision_unreachable_raises():
    y = np.array([True, True, False])
    s = np.array([1.0, 2.0, 3.0])  # the highest score is normal: precision never reaches 0.9
    with pytest.raises(BadInputError):
        target_precision_threshold(y, s, 0.9)
    with pytest.raises(BadInputError):
        target_precision_threshold(*labelled_scores(0), 1.1)


@pytest.mark.parametrize("y", [[True, True, True], [False, False, False]], ids=["no-normal", "no-abnormal"])
@pytest.mark.parametrize(
    "method",
    [
        max_f1_threshold,
        lambda y, s: target_recall_threshold(y, s, 0.8),
        lambda y, s: target_precision_threshold(y, s, 0.5),
        lambda y, s: min_cost_threshold(y, s, 10.0, 1.0),
    ],
    ids=["max_f1", "target_recall", "target_precision", "min_cost"],
)
def test_labelled_methods_need_both_classes(method, y):
    with pytest.raises(BadInputError):
        method(y, [0.1, 0.5, 0.9])


def test_labelled_methods_refuse_bad_scores():
    with pytest.raises(BadInputError):
        max_f1_threshold([True, False], [0.1, np.nan])
    with pytest.raises(BadInputError):
        min_cost_threshold([True, False, True], [0.1, 0.2], 1.0, 1.0)


@pytest.mark.parametrize(("cost_miss", "cost_false_alarm"), [(-1.0, 1.0), (1.0, -0.5)])
def test_min_cost_refuses_negative_costs(cost_miss, cost_false_alarm):
    with pytest.raises(BadInputError):
        min_cost_threshold([True, False], [0.9, 0.1], cost_miss, cost_false_alarm)


def test_target_recall_unreachable_raises_bad_input():
    with pytest.raises(BadInputError):
        target_recall_threshold(*labelled_scores(0), 1.5)


def test_methods_are_listed():
    assert METHODS == ("gamma", "max_f1", "target_recall", "target_precision", "min_cost")


# --- rounding for people ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "rounded"),
    [(740.259, 740.3), (6617.57, 6618.0), (9.04537, 9.045), (0.0123456, 0.01235), (-3.0, -3.0), (99999.0, 100000.0),
     (123456.7, 123500.0), (0.0, 0.0), (float("inf"), float("inf"))],
)  # fmt: skip
def test_a_threshold_away_from_the_scores_rounds_to_four_significant_digits(value, rounded):
    assert rounded_threshold(value, np.array([1.0, 5000.0, 200000.0]), 4) == rounded


def test_a_threshold_keeps_the_digits_that_flag_the_same_scores():
    """A suggestion sits on a score: rounding 18.2896 down would flag that clip, up to 18.29 would pass 18.2898."""
    scores = np.array([9.0, 18.2896, 18.2898, 30.0])
    assert rounded_threshold(18.2896, scores) == 18.2896
    assert rounded_threshold(18.2904, np.array([9.0, 18.2904, 30.0])) == 18.2904  # 18.29 and 18.290 flag its score
    assert rounded_threshold(30.0004, scores) == 30.0  # above every score: nothing flagged either way
    for value in (18.2896, 18.2904, 9.0, 29.99, 30.0):
        assert np.array_equal(scores > rounded_threshold(value, scores), scores > value)


def test_a_threshold_at_a_score_rounds_to_the_nearest_like_the_score_never_the_other_way():
    """The lowest score 9.04537 read 9.045 in a note while the slider's lowest stop, the threshold at it, read 9.046:
    rounded up because 9.045 would flag that clip. The threshold takes a digit more instead, rounded to the nearest,
    and reads as the score does."""
    scores = np.array([9.04537, 12.0, 6617.57])
    low = rounded_threshold(9.04537, scores)
    assert low == 9.0454 and f"{low:.3e}" == f"{9.04537:.3e}" == "9.045e+00"
    assert np.array_equal(scores > low, scores > 9.04537)  # every clip but the lowest flagged, as at the score
    assert rounded_threshold(6617.57, scores) == 6618.0  # up is the nearest: the highest reads 6618 both ways
    assert rounded_threshold(6617.43, np.array([9.0, 6617.43])) == 6617.43  # 6617 and 6617.4 would flag it


@pytest.mark.parametrize(("value", "rounded"), [(395.85, 395.9), (431.95, 431.9), (90.685, 90.69), (12345.0, 12340.0),
                                                (12355.0, 12360.0), (0.00012345, 0.0001234)])  # fmt: skip
def test_a_threshold_rounds_as_the_pages_write_the_same_number(value, rounded):
    """``round(value / 10**k)`` read 395.85 (395.85000000000002 in binary) as 395.8 where the pages' numbers (NumPy's
    correctly rounded formatting) write 395.9: the rounding is now that formatting's (a tie to even: 12345 -> 12340)."""
    assert rounded_threshold(value, np.array([1.0, 200000.0])) == rounded
    text = np.format_float_positional(value, precision=4, unique=False, fractional=False, trim="-")
    assert float(text) == rounded
