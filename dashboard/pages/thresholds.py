"""Thresholds: move the threshold and watch precision, recall, F1 and the confusion matrix follow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core.access import Action, why_not
from core.detection.metrics import PAUC_MAX_FPR, metrics_at, partial_auc, roc_auc, sweep
from core.detection.thresholds import method_name
from core.errors import MachineSoundError
from core.workflows.tuning import (
    SuggestOptions,
    data_version,
    saved_thresholds,
    set_threshold,
    suggest,
    tuning_data,
)
from dashboard.components import plots
from dashboard.components.annotator import unnamed
from dashboard.components.auth import current_actor
from dashboard.components.format import number
from dashboard.components.pickers import machine_picker
from dashboard.components.text import md_literal


@st.cache_data(show_spinner="Scoring and gathering labels…", max_entries=32)
def _data(machine: str, use_test: bool, version: tuple):
    """Cached per machine, test-split choice and data version: a new model, score, verdict or threshold
    invalidates it."""
    return tuning_data(machine, use_test=use_test)


SUGGESTED_KEY = "threshold_suggested"  # a suggestion's value, handed to the next run (which sets the controls first)
NOTE_KEY = "threshold_suggestion_note"  # what the last suggestion did, shown after the rerun
FROM_SUGGESTION_KEY = "threshold_from_suggestion"  # (method, value) of the last suggestion: saved with its method
VALUE_KEY = "threshold_value"  # the threshold both controls show
DIGITS = 6  # significant digits of a threshold on the slider, in the number box and in the metrics' titles
SHOWN = f"%.{DIGITS}g"  # the number box's printf format: as many significant digits as _label
SCALES = ("score quantiles", "log scale", "even steps")
SLIDER_STOPS = 401


def _slider_stops(scores: np.ndarray, scale: str) -> list[float]:
    """The slider's stops (scores, ascending, distinct): at quantiles of every scored clip's score, evenly on a
    log scale (positive scores only), or evenly over the range."""
    low, high = float(scores.min()), float(scores.max())
    if scale == "score quantiles":
        stops = np.quantile(scores, np.linspace(0.0, 1.0, SLIDER_STOPS))
    elif scale == "log scale" and low > 0:
        stops = np.geomspace(low, high, SLIDER_STOPS)
    else:
        stops = np.linspace(low, high, SLIDER_STOPS)
    by_label: dict[str, float] = {}  # the slider tells stops apart by their label: one stop per label
    for stop in np.unique(np.concatenate([[low], stops]))[:-1]:
        by_label.setdefault(_label(stop), float(stop))
    by_label[_label(high)] = high  # the highest score exactly: at the top nothing is flagged
    return sorted(by_label.values())


def _label(value: float) -> str:
    """A threshold as the slider, the number box (its printf format :data:`SHOWN`) and the metrics show it."""
    return number(value, DIGITS)


def _with_value(stops: list[float], value: float) -> list[float]:
    """``stops`` with ``value`` itself among them (in place of the stop that reads the same): the slider shows
    the very threshold the number box and the metrics show, never a nearby stop."""
    return sorted([stop for stop in stops if _label(stop) != _label(value)] + [value])


def _step(scores: np.ndarray, value: float) -> float:
    """The number box's +/- step: a 1-2-5 step near 1% of the scale the scores are read on: of the threshold
    itself where the scores span orders of magnitude (log axes: 0.01 at 0.97, 0.2 at 18), else of their range."""
    if plots.spans_orders(scores):
        scale = value if value > 0 else float(scores.min())
    else:
        scale = float(scores.max() - scores.min())
    if not scale > 0:
        return 0.01
    target = scale / 100
    exponent = int(np.floor(np.log10(target)))
    steps = [float(f"{m}e{e}") for e in (exponent, exponent + 1) for m in (1, 2, 5)]
    return min(steps, key=lambda step: abs(np.log10(step / target)))


def _from_slider() -> None:
    st.session_state[VALUE_KEY] = float(st.session_state["threshold_slider"])


def _from_number() -> None:
    st.session_state[VALUE_KEY] = float(st.session_state["threshold_number"])


def _threshold_controls(data, scores: np.ndarray) -> float:
    """A slider (stops at score quantiles, on a log scale or even, and the threshold itself) and, beside it, the
    exact value; both move and show the one threshold, in the detector's score units.  Returns it."""
    suggested = st.session_state.pop(SUGGESTED_KEY, None)
    if suggested is not None:
        st.session_state[VALUE_KEY] = suggested
    if st.session_state.get("threshold_for") != (data.machine, data.model_id):  # another machine or model
        st.session_state["threshold_for"] = (data.machine, data.model_id)
        st.session_state.pop(VALUE_KEY, None)
    if VALUE_KEY not in st.session_state:
        st.session_state[VALUE_KEY] = float(data.threshold if np.isfinite(data.threshold) else scores.max())
    value = st.session_state[VALUE_KEY]
    wide = plots.spans_orders(scores)
    scale = st.radio("Slider steps", SCALES, index=0 if wide else 2, horizontal=True, key="threshold_scale",
                     help="Where the slider stops: at quantiles of the clips' scores (as many stops between any "
                     "two percentiles), evenly on a log scale, or evenly over the score range. The number "
                     "beside it takes any value.")  # fmt: skip
    stops = _with_value(_slider_stops(scores, scale), value)
    st.session_state["threshold_slider"] = value
    st.session_state["threshold_number"] = value
    left, right = st.columns([4, 1], vertical_alignment="bottom")
    left.select_slider("Threshold", stops, key="threshold_slider", on_change=_from_slider,
                       format_func=_label,
                       help=f"{data.detector} scores; clips above the threshold are flagged")  # fmt: skip
    right.number_input("Threshold value", key="threshold_number", step=_step(scores, value), format=SHOWN,
                       on_change=_from_number,
                       help="Type any threshold: the slider moves to it; + and - step by about 1% of the "
                       "threshold (scores spanning orders of magnitude) or of the score range")  # fmt: skip
    return value


def _suggestions(machine: str, use_test: bool, current: float) -> None:
    st.subheader("Suggestions")
    st.caption("Suggestions fit on the same labelled clips as the metrics above (ground truth and the pilots' "
               "verdicts, under the label policy); the gamma quantile needs no labels.")  # fmt: skip
    note = st.session_state.pop(NOTE_KEY, None)
    if note:
        st.success(note)
    cols = st.columns(4, vertical_alignment="bottom")
    target = cols[2].number_input("Target recall", 0.05, 1.0, 0.9, 0.05)
    cost_miss = cols[3].number_input("Miss cost (x false alarm)", 0.1, 1000.0, 10.0)
    methods = {
        "Gamma quantile 0.9": SuggestOptions("gamma"),
        "Max F1": SuggestOptions("max_f1", use_test=use_test),
        "Target recall": SuggestOptions("target_recall", target=target, use_test=use_test),
        "Min cost": SuggestOptions("min_cost", cost_miss=cost_miss, use_test=use_test),
    }
    pressed = [label for column, label in zip(cols, methods, strict=True) if column.button(label)]
    for label in pressed:
        try:
            suggestion = suggest(machine, methods[label])
        except MachineSoundError as exc:
            st.warning(md_literal(exc.detail))
            return
        # the controls already exist in this run: hand the value over to the next run, which sets them first
        st.session_state[SUGGESTED_KEY] = float(suggestion.value)
        st.session_state["threshold_reason"] = suggestion.reason
        st.session_state[FROM_SUGGESTION_KEY] = (suggestion.method, float(suggestion.value))
        same = "unchanged: the threshold was already there" if np.isclose(suggestion.value, current) else (
            f"was {current:.6g}")  # fmt: skip
        st.session_state[NOTE_KEY] = (f"{label}: threshold {suggestion.value:.6g} ({same}). "
                                      f"{md_literal(suggestion.reason)}")  # fmt: skip
        st.rerun()


def _save(machine: str, value: float) -> None:
    """The reason and the Save button (disabled for roles that may not); the threshold is saved in the actor's name
    (with sign-in off, the name given in the sidebar)."""
    st.subheader("Save")
    actor = current_actor()
    reason = st.text_input("Why this threshold?", key="threshold_reason")
    refused = why_not(actor.role, Action.SET_THRESHOLD) or unnamed(actor)
    if st.button("Save threshold", type="primary", disabled=bool(refused), help=refused):
        try:
            method, suggested = st.session_state.get(FROM_SUGGESTION_KEY, ("manual", None))
            method = method if suggested == value else "manual"  # moved after the suggestion: set by hand
            set_threshold(machine, value, set_by=actor.name, reason=reason or "set on the threshold page",
                          method=method, actor=actor)  # fmt: skip
        except MachineSoundError as exc:
            st.error(md_literal(exc.detail))
        else:
            st.success(f"Threshold {_label(value)} saved for {md_literal(machine)}.")


def _metrics_and_charts(data, value: float, flagged_share: float, log: bool) -> None:
    """The metrics at ``value`` and the charts, on the labelled set (score axes on a log scale when ``log``)."""
    cols = st.columns([1, 1, 1, 1, 1, 1.7])  # each value and label whole at 1280 px; the last label is long
    cols[5].metric("Expected flags per day", f"{flagged_share * data.clips_per_day:.1f}",
                   help="Share of clips above the threshold x clips ingested per day (last 7 days)")  # fmt: skip
    if not (data.is_abnormal.size and data.is_abnormal.any() and not data.is_abnormal.all()):
        _before_labels(data, value, flagged_share, log)
        return
    at = metrics_at(data.is_abnormal, data.scores, value)
    cols[0].metric("Precision", f"{at.precision:.2f}")
    cols[1].metric("Recall", f"{at.recall:.2f}")
    cols[2].metric("F1", f"{at.f1:.2f}")
    cols[3].metric("AUC", f"{roc_auc(data.is_abnormal, data.scores):.2f}", help="Area under the ROC curve")
    cols[4].metric("pAUC", f"{partial_auc(data.is_abnormal, data.scores):.2f}",
                   help=f"Area under the ROC curve up to a false positive rate of {PAUC_MAX_FPR:g}, standardised: "
                   "0.5 is chance, 1 perfect")  # fmt: skip
    st.caption(f"Labels: {data.label_source}. Abnormal is the positive class."
               + (" Score axes are on a log scale: the scores span orders of magnitude." if log else ""))  # fmt: skip
    sw = sweep(data.is_abnormal, data.scores)
    left, right = st.columns(2)
    left.plotly_chart(plots.confusion(at.confusion, f"Confusion matrix at {_label(value)}"), key="cm")
    right.plotly_chart(plots.score_histogram(data.scores, data.is_abnormal, value, "labelled clips", log=log),
                       key="hist")  # fmt: skip
    left, middle, right = st.columns(3)
    left.plotly_chart(plots.against_threshold(sw, value, log=log), key="prf")
    middle.plotly_chart(plots.precision_recall(sw, marker=(at.recall, at.precision)), key="pr")
    fpr = sw.fp / max(int((~data.is_abnormal).sum()), 1)
    right.plotly_chart(plots.curve(fpr, sw.recall, title="ROC", x_title="false positive rate",
                                   y_title="true positive rate"), key="roc")  # fmt: skip
    st.plotly_chart(plots.score_scatter(data.scores, data.is_abnormal, value, log=log), key="scatter")


def _before_labels(data, value: float, flagged_share: float, log: bool) -> None:
    """No precision or recall without both kinds of labels: the share the threshold flags and the scores of the
    clips the model did not train on beside it, which is what a first threshold is set from."""
    st.metric("Share flagged", f"{flagged_share:.0%}",
              help="Clips above the threshold, of the scored clips the model did not train on")  # fmt: skip
    st.info(f"Precision and recall need labelled normal and abnormal clips ({data.label_source}). "
            "Judge flagged clips on the Triage page, or include the test split.")  # fmt: skip
    hist = plots.score_histogram(data.scores, data.is_abnormal, value, "clips the model did not train on", log=log,
                                 unlabelled=data.unlabelled_scores, unlabelled_weights=data.unlabelled_weights)
    st.plotly_chart(hist, key="hist")


def _history(machine: str) -> None:
    """Every threshold saved for the machine's active model, newest first."""
    st.subheader("Saved thresholds")
    records = saved_thresholds(machine)
    table = pd.DataFrame(
        [
            {
                "when (UTC)": r.set_at.strftime("%Y-%m-%d %H:%M:%S"),
                "who": r.set_by,
                "value": r.value,
                "method": method_name(r.method),
                "reason": r.reason,
            }
            for r in records
        ],  # fmt: skip
        columns=["when (UTC)", "who", "value", "method", "reason"],
    )
    st.caption("Newest first; the first is the active threshold. Double-click a reason to read it whole.")
    st.dataframe(table, hide_index=True, key="threshold_history",
                 column_config={"value": st.column_config.NumberColumn(format="%.6g"),
                                "reason": st.column_config.TextColumn(width="large")})  # fmt: skip


def render() -> None:
    st.title("Threshold tuning")
    machine = machine_picker(require_model=True)
    if machine is None:
        return
    use_test = st.checkbox(
        "Include the test split", value=True, key="threshold_use_test",
        help="Tune on the held-out test clips' ground truth as well as on the pilots' verdicts. Their "
        "metrics then no longer grade the model fairly; untick to tune on pilot verdicts alone.",
    )  # fmt: skip
    data = _data(machine, use_test, data_version(machine))
    all_scores = np.concatenate([data.scores, data.unlabelled_scores])
    if all_scores.size == 0:
        st.info(f"No scored clip to tune on yet for this machine ({data.label_source}).")
        _history(machine)
        return
    value = _threshold_controls(data, all_scores)
    _metrics_and_charts(data, value, data.flagged_share(value), plots.spans_orders(all_scores))
    _suggestions(machine, use_test, value)
    _save(machine, value)
    _history(machine)


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
