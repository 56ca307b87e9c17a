"""dashboard/components/plots.py's per-band error chart: frequency ticks labelled in full, never crowded."""

from __future__ import annotations

import numpy as np
import pytest

from core.signal.features import mel_band_centres
from dashboard.components.plots import errors_per_band


@pytest.mark.parametrize(
    ("sr", "ticks"),
    [(16_000, ["50", "100", "200", "500", "1k", "2k", "5k"]),
     (48_000, ["50", "100", "200", "500", "1k", "2k", "5k", "10k", "20k"])],
)  # fmt: skip
def test_band_chart_ticks_at_one_two_five_per_decade_labelled_in_full(sr, ticks):
    fig = errors_per_band(np.linspace(0.0, 1.0, 128), sr)
    axis = fig.layout.xaxis
    assert axis.type == "log" and axis.tickmode == "array"
    assert list(axis.ticktext) == ticks  # not Plotly's "2 5 100 2 5 1000"
    freqs = np.maximum(mel_band_centres(sr, 128), 20.0)
    assert all(freqs.min() <= v <= freqs.max() for v in axis.tickvals)  # every tick inside the drawn bands
    assert [float(t.replace("k", "")) * (1000 if "k" in t else 1) for t in axis.ticktext] == list(axis.tickvals)
