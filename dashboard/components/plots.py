"""Plotly figures shared by the pages, in the shared colours."""

from __future__ import annotations

import librosa
import numpy as np
import plotly.graph_objects as go

from core.detection.metrics import Confusion, Sweep
from core.signal.features import mel_band_centres
from dashboard.components.text import plot_literal
from dashboard.theme import LABEL_COLOURS

MARGINS = dict(l=10, r=10, t=40, b=10)
# a spectrogram sharing a 720 px screen with the player and the verdict buttons (Triage): its title in a shorter
# margin, the time axis said by its ticks ("4 s") rather than by an axis title; the picture keeps the height saved
TIGHT_MARGINS = dict(l=10, r=10, t=28, b=4)
# Plotly's mode bar (shown on hover, top right) spans a chart a third of the page wide and covered its title in a
# 40 px margin: the charts of the Thresholds and Compare pages take a taller margin, their title at its foot, just
# over the plot, and the mode bar above it
TITLED_MARGINS = dict(l=10, r=10, t=60, b=10)


def _under_mode_bar(title: str) -> dict:
    """A chart's title (shown as given) at the foot of :data:`TITLED_MARGINS`, clear of the mode bar above it."""
    return dict(text=title, yref="paper", y=1, yanchor="bottom", pad=dict(b=6))


# a horizontal legend under the x axis title takes no width from a narrow chart (beside it, it took half of a third
# of the page)
LEGEND_BELOW = dict(orientation="h", x=0, xanchor="left", y=-0.25, yanchor="top")


def waveform(envelope: tuple[np.ndarray, np.ndarray, np.ndarray], title: str = "Waveform") -> go.Figure:
    """The waveform as its min/max ``envelope`` ``(times_s, low, high)`` (:func:`core.signal.display.envelope`)."""
    times, low, high = envelope
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=times, y=high, mode="lines", line=dict(width=0.5, color="#457b9d"), showlegend=False))
    fig.add_trace(go.Scatter(x=times, y=low, mode="lines", fill="tonexty", line=dict(width=0.5, color="#457b9d"),
                             showlegend=False))  # fmt: skip
    fig.update_layout(title=title, height=220, margin=MARGINS, xaxis_title="time (s)", yaxis_title="amplitude")
    return fig


def spectrogram(db: np.ndarray, sr: int, hop_length: int, *, mel: bool, title: str, height: int = 280,
                spans: tuple[tuple[float, float], ...] = (), selectable: bool = False,
                tight: bool = False) -> go.Figure:  # fmt: skip
    """A dB spectrogram ``(n_bins, n_columns)`` with time (s) and frequency (Hz) axes; each of ``spans``
    ``(start_s, end_s)`` outlined (the most anomalous span, the span playing); ``selectable`` adds an invisible
    row of points along the time axis, so that a box drawn over the picture selects a time span (a heatmap alone
    has no points to select); ``tight``: :data:`TIGHT_MARGINS`, the seconds on the ticks, no time axis title."""
    times = librosa.frames_to_time(np.arange(db.shape[1]), sr=sr, hop_length=hop_length)
    n_bins = db.shape[0]
    freqs = mel_band_centres(sr, n_bins) if mel else librosa.fft_frequencies(sr=sr, n_fft=2 * (n_bins - 1))
    hover = "%{x:.2f} s, %{y:.0f} Hz: %{z:.1f} dB"
    fig = go.Figure(go.Heatmap(z=db, x=times, y=freqs, colorscale="Magma", zmin=-80, zmax=0,
                               colorbar=dict(title="dB"), hovertemplate=hover))  # fmt: skip
    if selectable:
        fig.add_trace(go.Scatter(x=times, y=np.full(times.shape, float(np.median(freqs))), mode="markers",
                                 marker=dict(size=6, opacity=0), hoverinfo="skip", showlegend=False))  # fmt: skip
    for start, end in spans:
        fig.add_vrect(x0=start, x1=end, line=dict(color="#7fffd4", width=2), fillcolor="rgba(0,0,0,0)")
    fig.update_layout(title=title, height=height, margin=TIGHT_MARGINS if tight else MARGINS,
                      xaxis_title=None if tight else "time (s)", yaxis_title="frequency (Hz)",
                      dragmode="select" if selectable else None)  # fmt: skip
    if tight:
        fig.update_xaxes(ticksuffix=" s")
    return fig


def errors_over_time(frame_errors, hop_length: int, sr: int, window: tuple[float, float] | None, *,
                     selectable: bool = False, y_range: tuple[float, float] | None = None) -> go.Figure:  # fmt: skip
    """The detector's error per feature vector over time, the most abnormal second shaded; ``selectable`` makes
    a drag select a time span rather than zoom; ``y_range`` fixes the error axis (two clips on one scale)."""
    times = np.arange(len(frame_errors)) * hop_length / sr
    fig = go.Figure(go.Scatter(x=times, y=frame_errors, mode="lines+markers", marker=dict(size=2),
                               line=dict(color=LABEL_COLOURS["abnormal"])))  # fmt: skip
    if window:  # markers: points a box can select (a line alone has none)
        fig.add_vrect(x0=window[0], x1=window[1], fillcolor=LABEL_COLOURS["abnormal"], opacity=0.15, line_width=0)
    fig.update_layout(title="Error over time", height=220, margin=MARGINS, xaxis_title="time (s)",
                      yaxis_title="error", dragmode="select" if selectable else None)  # fmt: skip
    if y_range:
        fig.update_yaxes(range=list(y_range))
    return fig


def _decade_ticks(low: float, high: float) -> tuple[list[float], list[str]]:
    """Ticks at 1, 2 and 5 of each decade between ``low`` and ``high`` (> 0: Hz, scores), labelled in full (``50``,
    ``200``, ``1k``, ``5k``): Plotly's own log ticks label the minor ones ``2`` and ``5`` only, which crowd and read
    as ``2 5 100 2 5 1000``."""
    ticks = [m * 10.0**e for e in range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
             for m in (1, 2, 5) if low <= m * 10.0**e <= high]  # fmt: skip
    return ticks, [f"{t / 1000:g}k" if t >= 1000 else f"{t:g}" for t in ticks]


def errors_per_band(band_errors, sr: int, *, y_range: tuple[float, float] | None = None) -> go.Figure:
    """Error per mel band, on a logarithmic frequency axis (mel bands are evenly spread there); ``y_range`` fixes
    the error axis (two clips on one scale)."""
    freqs = np.maximum(mel_band_centres(sr, len(band_errors)), 20.0)
    fig = go.Figure(go.Scatter(x=freqs, y=band_errors, mode="lines+markers", fill="tozeroy",
                               line=dict(color=LABEL_COLOURS["abnormal"]),
                               hovertemplate="%{x:.0f} Hz: %{y:.4g}<extra></extra>"))  # fmt: skip
    tickvals, ticktext = _decade_ticks(float(freqs.min()), float(freqs.max()))
    fig.update_layout(title="Error per mel band", height=220, margin=MARGINS, xaxis_title="frequency (Hz)",
                      xaxis_type="log", yaxis_title="error")  # fmt: skip
    fig.update_xaxes(tickmode="array", tickvals=tickvals, ticktext=ticktext)
    if y_range:
        fig.update_yaxes(range=list(y_range))
    return fig


def confusion(c: Confusion, title: str) -> go.Figure:
    """Confusion matrix heatmap, abnormal as the positive class, with counts and row rates; ``title`` (it may name
    machines and models) is shown as typed."""
    counts = np.array([[c.tp, c.fn], [c.fp, c.tn]])
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    text = [[f"{counts[i, j]}<br>{rates[i, j]:.0%}" for j in range(2)] for i in range(2)]
    fig = go.Figure(go.Heatmap(z=rates, x=["flagged abnormal", "passed as normal"], y=["abnormal", "normal"],
                               text=text, texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1,
                               showscale=False,
                               hovertemplate="truth %{y}, model says %{x}: %{text}<extra></extra>"))  # fmt: skip
    fig.update_layout(title=_under_mode_bar(plot_literal(title)), height=300, margin=TITLED_MARGINS,
                      xaxis_title="model says", yaxis_title="truth", yaxis_autorange="reversed")  # fmt: skip
    # abnormal on top, as confusion matrices are read
    return fig


LOG_SPAN = 100.0  # scores whose highest is at least this many times the lowest (all positive) get log axes


def spans_orders(scores: np.ndarray) -> bool:
    """Whether ``scores`` (any shape, the detector's units) are all positive and span orders of magnitude
    (max / min >= :data:`LOG_SPAN`): score axes are then drawn on a log scale."""
    s = np.asarray(scores, dtype=np.float64)
    return bool(s.size and s.min() > 0 and s.max() >= LOG_SPAN * s.min())


def _log_ticks(low: float, high: float) -> tuple[list[float], list[str]]:
    """Tick positions (log10) and labels (:func:`_decade_ticks`) covering ``[low, high]`` (both positive), for an
    axis drawn in log10(score)."""
    values, labels = _decade_ticks(low / 2, high * 2)
    return [float(np.log10(v)) for v in values], labels


def score_histogram(
    scores: np.ndarray, is_abnormal: np.ndarray, threshold: float, clips: str, *, log: bool = False,
    unlabelled: np.ndarray | None = None, unlabelled_weights: np.ndarray | None = None,
) -> go.Figure:  # fmt: skip
    """Scores ``(n,)`` of the labelled normal and abnormal clips, titled "Scores (``clips``)" (a few words: the
    page names the clips and their labels in a caption), and with ``unlabelled`` the scores of clips without a
    label (a sample: each stands for ``unlabelled_weights`` clips, default 1), counted in clips; with ``log``,
    binned evenly in log10(score) and labelled in scores, so the normal clips stay visible beside anomalies
    scoring orders of magnitude higher."""
    groups = [("normal", scores[~is_abnormal], None), ("abnormal", scores[is_abnormal], None)]
    if unlabelled is not None:  # only what there is: before labels, a lone "abnormal" legend with no bar misleads
        groups = [g for g in [*groups, ("unknown", unlabelled, unlabelled_weights)] if g[1].size]
    fig, tallest = go.Figure(), 0.0
    for name, values, weights in groups:
        x = np.log10(values) if log else np.asarray(values, dtype=np.float64)
        counts = np.ones(x.size) if weights is None else np.asarray(weights, dtype=np.float64)
        fig.add_trace(go.Histogram(x=x, y=counts, histfunc="sum", name="unlabelled" if name == "unknown" else name,
                                   marker_color=LABEL_COLOURS[name], opacity=0.6, nbinsx=40))  # fmt: skip
        tallest = max(tallest, np.histogram(x, bins=40, weights=counts)[0].max(initial=0))
    at = float(np.log10(threshold)) if log and threshold > 0 else threshold
    fig.add_vline(x=at, line_dash="dash", annotation_text="threshold", annotation_position="top right")
    fig.update_layout(barmode="overlay", title=_under_mode_bar(plot_literal(f"Scores ({clips})")), height=300,
                      margin=TITLED_MARGINS,
                      xaxis_title="score (log scale)" if log else "score", yaxis_title="clips",
                      legend=LEGEND_BELOW)  # fmt: skip
    fig.update_yaxes(dtick=max(1, int(np.ceil(tallest / 5))))  # whole clips, about 5 ticks
    every = np.concatenate([scores, unlabelled]) if unlabelled is not None else scores
    if log and every.size:
        positions, labels = _log_ticks(float(np.min(every)), float(np.max(every)))
        fig.update_xaxes(tickvals=positions, ticktext=labels)
    return fig


def precision_recall(sw: Sweep, marker: tuple[float, float]) -> go.Figure:
    """The precision-recall curve over the thresholds that flag at least one clip."""
    flags = sw.tp + sw.fp > 0
    return curve(sw.recall[flags], sw.precision[flags], title="Precision-recall", x_title="recall",
                 y_title="precision", marker=marker)  # fmt: skip


def score_scatter(scores: np.ndarray, is_abnormal: np.ndarray, threshold: float, *, log: bool = False) -> go.Figure:
    """Each labelled clip's score ``(n,)`` in id order, the threshold as a line (score axis on a log scale with
    ``log``)."""
    fig = go.Figure()
    index = np.arange(len(scores))
    for name, mask in (("normal", ~is_abnormal), ("abnormal", is_abnormal)):
        fig.add_trace(go.Scattergl(x=index[mask], y=scores[mask], mode="markers", name=name,
                                   marker=dict(color=LABEL_COLOURS[name], size=5),
                                   hovertemplate=f"{name} clip: score %{{y:.4g}}<extra></extra>"))  # fmt: skip
    fig.add_trace(go.Scatter(x=[0, max(len(scores) - 1, 1)], y=[threshold, threshold], mode="lines",
                             name="threshold", line=dict(dash="dash", color="#444")))  # fmt: skip
    fig.update_layout(title=_under_mode_bar("Clip scores"), height=300, margin=TITLED_MARGINS,
                      xaxis_title="clip (labelled, in id order)",
                      yaxis_title="score", yaxis_type="log" if log else "linear", legend=LEGEND_BELOW)  # fmt: skip
    _label_log_axis(fig.update_yaxes, np.r_[scores, threshold] if log else np.array([]))
    return fig


def curve(x, y, *, title: str, x_title: str, y_title: str, marker: tuple[float, float] | None = None) -> go.Figure:
    hover = f"{x_title} %{{x:.2f}}, {y_title} %{{y:.2f}}"  # never Plotly's bare "(0.3333333, 0.6666667) trace 0"
    fig = go.Figure(go.Scatter(x=x, y=y, mode="lines", line=dict(color="#1d3557"),
                               hovertemplate=f"{hover}<extra></extra>"))  # fmt: skip
    if marker:
        fig.add_trace(go.Scatter(x=[marker[0]], y=[marker[1]], mode="markers", marker=dict(size=10, color="#e63946"),
                                 name="current threshold",
                                 hovertemplate=f"current threshold: {hover}<extra></extra>"))  # fmt: skip
    fig.update_layout(title=_under_mode_bar(title), height=300, margin=TITLED_MARGINS, xaxis_title=x_title,
                      yaxis_title=y_title,
                      showlegend=False)  # fmt: skip
    return fig


def against_threshold(sw: Sweep, threshold: float, *, log: bool = False) -> go.Figure:
    """Precision, recall and F1 as the threshold moves, the current one marked (threshold axis on a log scale
    with ``log``, for positive scores)."""
    fig = go.Figure()
    precision = np.where(sw.tp + sw.fp > 0, sw.precision, np.nan)  # undefined where nothing is flagged
    for name, values, colour in (("precision", precision, "#1d3557"), ("recall", sw.recall, "#e63946"),
                                 ("F1", sw.f1, "#2a9d8f")):  # fmt: skip
        fig.add_trace(go.Scatter(x=sw.thresholds, y=values, mode="lines", name=name, line=dict(color=colour),
                                 line_shape="hv", hovertemplate=f"{name} %{{y:.2f}} at threshold %{{x:.4g}}"
                                 "<extra></extra>"))  # fmt: skip
    fig.add_trace(go.Scatter(x=[threshold, threshold], y=[0, 1.02], mode="lines", name="threshold",
                             line=dict(dash="dash", color="#444")))  # fmt: skip
    fig.update_layout(title=_under_mode_bar("Precision, recall, F1"), height=340, margin=TITLED_MARGINS,
                      xaxis_title="threshold",
                      yaxis_range=[0, 1.02], legend=LEGEND_BELOW)  # fmt: skip
    fig.update_xaxes(type="log" if log else "linear")
    _label_log_axis(fig.update_xaxes, np.asarray(sw.thresholds, dtype=float) if log else np.array([]), most=7)
    return fig


def _label_log_axis(update_axis, values: np.ndarray, *, most: int | None = None) -> None:
    """1-2-5 ticks (:func:`_decade_ticks`) over the positive finite ``values`` on a log axis, at most ``most`` of
    them (a narrow chart: the 2s go first, then the 5s, so labels never overlap); nothing without two ticks."""
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size:
        ticks = list(zip(*_decade_ticks(float(positive.min()), float(positive.max())), strict=True))
        for dropped in ("2", "5"):
            if most is not None and len(ticks) > most:
                ticks = [tick for tick in ticks if f"{tick[0]:.0e}"[0] != dropped]  # the leading digit
        if len(ticks) >= 2:
            update_axis(tickvals=[value for value, _ in ticks], ticktext=[text for _, text in ticks])
