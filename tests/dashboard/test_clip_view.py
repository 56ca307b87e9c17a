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


def test_two_clips_share_error_scales_only_when_one_explain_computed_both():
    from core.workflows.explore import ClipDetails
    from dashboard.components.clip_view import shared_error_scale

    def clip(clip_id: int, errors: list[float], *, model_id: int = 1, version: int = 2) -> ClipDetails:
        return ClipDetails(clip_id, f"{clip_id}.wav", "fan/id_00", "normal", "train", 10.0, 1, 16000, model_id,
                           1.0, 2.0, errors, errors[:2], explanation_version=version)  # fmt: skip

    scale = shared_error_scale(clip(1, [0.5, 4.0, 1.0]), clip(2, [-0.5, 1.0, float("nan")]))
    assert scale.over_time == (-0.5, 4.0 + 0.05 * 4.5) and scale.per_band == (-0.5, 4.0 + 0.05 * 4.5)
    assert shared_error_scale(clip(1, [1.0, 2.0]), clip(2, [1.0, 2.0], version=1)) is None  # stored before a change
    assert shared_error_scale(clip(1, [1.0, 2.0]), clip(2, [1.0, 2.0], model_id=3)) is None  # another model
    assert shared_error_scale(clip(1, [1.0, 2.0]), None) is None
    assert shared_error_scale(clip(1, [1.0, 2.0]), clip(2, [float("nan")] * 2)) == shared_error_scale(
        clip(1, [1.0, 2.0]), clip(2, [1.0, 1.0]))  # fmt: skip
