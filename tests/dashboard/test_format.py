"""dashboard/components/format.py: scores and thresholds as plain decimals that tell different values apart."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from dashboard.components.format import MISSING, count, duration, fixed, number, numbers_apart, when


@pytest.mark.parametrize(
    ("value", "shown"),
    [(4.996, "4.996"), (5.0, "5"), (0.5, "0.5"), (1.25e-05, "0.0000125"), (123456.7, "123457"), (-3.14159, "-3.142"),
     (0.0, "0"), (-0.0, "0"), (np.float32(2.5), "2.5"), (7, "7"), (float("inf"), "inf")],
)  # fmt: skip
def test_numbers_are_plain_decimals_with_four_significant_digits(value, shown):
    assert number(value) == shown


@pytest.mark.parametrize("missing", [None, float("nan"), np.float64("nan")])
def test_missing_numbers_read_as_a_dash_or_the_words_given(missing):
    assert number(missing) == MISSING
    assert number(missing, missing="no model") == "no model"


def test_a_score_just_above_its_threshold_never_reads_as_equal_to_it():
    assert numbers_apart(4.99612, 4.99587) == ("4.9961", "4.9959")
    assert numbers_apart(4.996, 4.996) == ("4.996", "4.996")
    assert numbers_apart(12.5, None) == ("12.5", MISSING)


def test_timestamps_to_the_minute_or_the_words_given():
    assert when(datetime(2026, 11, 25, 14, 3, 59)) == "2026-11-25 14:03"
    assert when(datetime(2026, 11, 25, 14, 3, 59, 123456), seconds=True) == "2026-11-25 14:03:59"
    assert when(None) == MISSING and when(pd.NaT, missing="never") == "never"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.52, "0.520"), (0.9286, "0.929"), (1, "1.000"), (np.float64(0.0), "0.000"), (None, MISSING),
     (float("nan"), MISSING), (np.float32("nan"), MISSING)],
)  # fmt: skip
def test_fixed_gives_every_figure_of_a_column_the_same_decimals(value, shown):
    assert fixed(value) == shown


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(0.004, "under 0.1 s"), (0.44, "0.4 s"), (9.96, "10.0 s"), (12.4, "12 s"), (125.2, "2 min 05 s")],
)
def test_a_duration_never_reads_as_zero_seconds(seconds, said):
    """Train detector said "in 0.0 s" for a detector that trains in milliseconds."""
    assert duration(seconds) == said


def test_a_count_says_its_noun_in_the_singular_only_for_one():
    assert [count(n, "clip") for n in (0, 1, 2)] == ["0 clips", "1 clip", "2 clips"]
    assert count(3, "analysis", "analyses") == "3 analyses" and count(1, "analysis", "analyses") == "1 analysis"
