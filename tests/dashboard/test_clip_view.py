"""dashboard.components.clip_view: the span a Plotly selection event covers (what a box drawn on the error chart
or the spectrogram loops)."""

from __future__ import annotations

import pytest

from dashboard.components.clip_view import selected_span


@pytest.mark.parametrize(
    ("state", "span"),
    [
        ({"selection": {"box": [{"x": [4.5, 2.25], "y": [0, 1]}], "points": [{"x": 3.0}]}}, (2.25, 4.5)),  # the box
        ({"selection": {"box": [{"x": [1, 2]}, {"x": [6, 7]}], "points": []}}, (6.0, 7.0)),  # the latest box
        ({"selection": {"box": [], "points": [{"x": 3.5}, {"x": 1.25}, {"x": 2.0}]}}, (1.25, 3.5)),  # the points
        ({"selection": {"box": [{"x": [-0.5, 1.0]}]}}, (0.0, 1.0)),  # never before the clip
        ({"selection": {"box": [], "points": [{"x": 3.0}]}}, None),  # one point: no width
        ({"selection": {"box": [], "points": []}}, None),  # a click that cleared the selection
        ({}, None),
        (None, None),
    ],
)
def test_selected_span(state, span):
    assert selected_span(state) == span
