"""dashboard/components/plots.py: score axes on a log scale when scores span orders of magnitude."""

from __future__ import annotations

import numpy as np

from core.detection.metrics import sweep
from dashboard.components import plots


def test_spans_orders_needs_positive_scores_a_hundredfold_apart():
    assert plots.spans_orders(np.array([9.0, 40.0, 6618.0]))
    assert not plots.spans_orders(np.array([0.2, 0.9, 1.4]))  # an autoencoder's errors: linear is fine
    assert not plots.spans_orders(np.array([-1.0, 5000.0]))  # a negative score has no logarithm
    assert not plots.spans_orders(np.array([]))


def test_a_log_histogram_bins_in_log_score_and_labels_ticks_in_scores():
    rng = np.random.default_rng(0)
    normal, abnormal = rng.uniform(9, 30, 40), rng.uniform(1000, 6618, 6)
    scores = np.concatenate([normal, abnormal])
    is_abnormal = np.arange(scores.size) >= normal.size
    fig = plots.score_histogram(scores, is_abnormal, 100.0, "labels", log=True)
    assert np.allclose(fig.data[0].x, np.log10(normal)) and np.allclose(fig.data[1].x, np.log10(abnormal))
    assert fig.layout.shapes[0].x0 == 2.0  # the threshold 100, at log10(100)
    ticks = dict(zip(fig.layout.xaxis.ticktext, fig.layout.xaxis.tickvals, strict=True))
    assert ticks["10"] == 1.0 and ticks["1k"] == 3.0 and ticks["5k"] == np.log10(5000)  # as the other log axes
    assert 10 ** min(ticks.values()) <= scores.min() and 10 ** max(ticks.values()) >= scores.max() / 2
    linear = plots.score_histogram(scores, is_abnormal, 100.0, "labels")
    assert np.allclose(linear.data[0].x, normal) and linear.layout.shapes[0].x0 == 100.0


def test_a_histogram_counts_a_sample_of_unlabelled_scores_in_the_clips_each_stands_for():
    """The threshold page samples the scores of a busy machine's unlabelled clips (each standing for several);
    the bars count clips, not sample points, and only the kinds of clip there are get a bar and a legend."""
    labelled, is_abnormal = np.array([1.0, 2.0]), np.array([False, False])
    sample, weights = np.array([1.5, 3.0, 8.0]), np.array([10.0, 10.0, 5.0])
    fig = plots.score_histogram(labelled, is_abnormal, 4.0, "labels", unlabelled=sample, unlabelled_weights=weights)
    assert [trace.name for trace in fig.data] == ["normal", "unlabelled"]
    assert fig.data[1].histfunc == "sum" and list(fig.data[1].y) == [10.0, 10.0, 5.0]
    assert fig.layout.yaxis.dtick == 2  # the tallest bar holds 10 clips: ticks every 2


def test_scatter_and_metric_curves_put_scores_on_a_log_axis():
    scores = np.array([9.0, 12.0, 15.0, 3000.0, 6618.0])
    is_abnormal = np.array([False, False, False, True, True])
    scatter = plots.score_scatter(scores, is_abnormal, 100.0, log=True)
    assert scatter.layout.yaxis.type == "log" and list(scatter.data[-1].y) == [100.0, 100.0]
    curves = plots.against_threshold(sweep(is_abnormal, scores), 100.0, log=True)
    assert curves.layout.xaxis.type == "log" and list(curves.data[-1].x) == [100.0, 100.0]
    assert plots.score_scatter(scores, is_abnormal, 100.0).layout.yaxis.type == "linear"


def test_log_score_axes_are_labelled_in_full_at_1_2_5_not_plotlys_crowded_minor_ticks():
    scores = np.array([9.0, 12.0, 15.0, 3000.0, 6618.0])
    is_abnormal = np.array([False, False, False, True, True])
    scatter = plots.score_scatter(scores, is_abnormal, 100.0, log=True).layout.yaxis
    assert list(scatter.tickvals) == [10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
    assert list(scatter.ticktext) == ["10", "20", "50", "100", "200", "500", "1k", "2k", "5k"]
    curves = plots.against_threshold(sweep(is_abnormal, scores), 100.0, log=True).layout.xaxis
    assert curves.ticktext and curves.ticktext[0] == "10" and "5k" in curves.ticktext
    assert plots.score_scatter(scores, is_abnormal, 100.0).layout.yaxis.tickvals is None  # linear: Plotly's own


def test_the_metric_curves_fit_a_third_of_the_page_with_their_legend_below_and_few_log_ticks():
    """The precision/recall/F1 chart was 80 px wide beside its legend, its ticks 10 ... 5k overlapping."""
    fan = np.array([9.0, 12.0, 15.0, 3000.0, 6618.0])
    pump = np.array([0.07, 0.4, 0.9, 2.9, 290.0])
    is_abnormal = np.array([False, False, False, True, True])
    for scores in (fan, pump):
        fig = plots.against_threshold(sweep(is_abnormal, scores), 1.0, log=True)
        assert fig.layout.title.text == "Precision, recall, F1"
        assert fig.layout.legend.orientation == "h" and fig.layout.legend.y < 0
        assert 3 <= len(fig.layout.xaxis.ticktext) <= 7
    assert list(plots.against_threshold(sweep(is_abnormal, fan), 100.0, log=True).layout.xaxis.ticktext) == [
        "10", "50", "100", "500", "1k", "5k",
    ]  # fmt: skip  # the 2s go first
    assert list(plots.against_threshold(sweep(is_abnormal, pump), 1.0, log=True).layout.xaxis.ticktext) == [
        "0.1", "0.5", "1", "5", "10", "50", "100",
    ]  # fmt: skip


def test_every_threshold_chart_names_what_a_hover_shows():
    """Plotly's default hover read "(0.3333333, 0.6666667) trace 0" and "z: 0.3076923"."""
    from core.detection.metrics import Confusion

    y = np.array([False, False, True, True])
    s = np.array([1.0, 2.0, 3.0, 0.5])
    sw = sweep(y, s)
    figures = [plots.precision_recall(sw, (0.5, 1.0)), plots.against_threshold(sw, 2.0),
               plots.score_scatter(s, y, 2.0), plots.confusion(Confusion(tp=1, fp=0, tn=2, fn=1), "m")]  # fmt: skip
    templates = [trace.hovertemplate for fig in figures for trace in fig.data if trace.name != "threshold"]
    assert templates and all(t and t.endswith("<extra></extra>") for t in templates), templates
    assert figures[0].data[0].hovertemplate == "recall %{x:.2f}, precision %{y:.2f}<extra></extra>"
    assert figures[3].data[0].hovertemplate == "truth %{y}, model says %{x}: %{text}<extra></extra>"


def test_a_tight_spectrogram_gives_its_margins_to_the_picture():
    """Triage's spectrogram had 88 px of picture in 200: a 40 px title margin and a 'time (s)' axis title. Tight,
    the title takes a shorter margin and the seconds are on the ticks."""
    db = np.zeros((64, 100))
    usual = plots.spectrogram(db, 16000, 512, mel=True, title="Mel spectrogram (dB)").layout
    tight = plots.spectrogram(db, 16000, 512, mel=True, title="Mel spectrogram (dB)", tight=True).layout
    assert usual.xaxis.title.text == "time (s)" and usual.margin.t == 40
    assert tight.xaxis.title.text is None and tight.xaxis.ticksuffix == " s"
    assert tight.margin.t + tight.margin.b < usual.margin.t + usual.margin.b - 15
