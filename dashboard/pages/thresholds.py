"""Thresholds: move the threshold and watch precision, recall, F1 and the confusion matrix follow."""

from __future__ import annotations

import bisect

import numpy as np
import pandas as pd
import streamlit as st

from core.access import Action
from core.detection.metrics import PAUC_MAX_FPR, metrics_at, partial_auc, roc_auc, sweep
from core.detection.selection import detector_name
from core.detection.thresholds import method_name, rounded_threshold
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
from dashboard.components.annotator import action_button, refusal
from dashboard.components.auth import current_actor
from dashboard.components.format import MAX_SIGNIFICANT, SIGNIFICANT, number
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
SHOWN = f"%.{MAX_SIGNIFICANT}g"  # the number box's printf format: every digit a threshold has (see _as_shown)
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
    inner = {float(number(stop, SIGNIFICANT)) for stop in stops[1:-1]}  # as they read
    ends = _as_shown(low, scores), _as_shown(high, scores)  # at the top nothing is flagged, at the bottom all but one
    return sorted({stop for stop in inner if ends[0] < stop < ends[1]} | set(ends))


def _as_shown(value: float, scores: np.ndarray) -> float:
    """A threshold the page derives (a suggestion, a slider stop) as it shows and saves it: rounded to the nearest
    with :data:`SIGNIFICANT` significant digits, or as many more as it takes to flag the same of ``scores`` (a
    suggestion sits on a score; rounding down would flag that clip)."""
    return rounded_threshold(float(value), scores, SIGNIFICANT)


def _as_typed(value: float) -> float:
    """A threshold a person gave (typed in the box, or saved by hand) as it is, to the :data:`MAX_SIGNIFICANT`
    digits the box shows: ``12345`` stays ``12345`` (rounded, it was saved as ``12340``)."""
    return float(SHOWN % value)


def _as_saved(value: float, scores: np.ndarray) -> float:
    """A saved threshold as the page shows it: as saved when it has no more digits than the box shows (set on this
    page, or given by hand), else (a fit's float, ``18.2896374...``) as :func:`_as_shown` rounds it."""
    return value if _as_typed(value) == value else _as_shown(value, scores)


def _label(value: float) -> str:
    """A threshold (as :func:`_as_shown` rounds it) as the slider, the number box (its printf format
    :data:`SHOWN`), the metrics and the notes show it: every digit it has, no more."""
    return number(value, MAX_SIGNIFICANT)


def _with_value(stops: list[float], value: float) -> list[float]:
    """``stops`` with ``value`` itself in place of the stop nearest to it (the lowest and the highest stay, unless
    ``value`` lies beyond them): the slider shows the very threshold the number box and the metrics show, and its
    first arrow key moves it about as far as the next (a stop left beside it moved it by a hair)."""
    if value in stops:
        return stops
    movable = range(1, len(stops) - 1) if stops[0] < value < stops[-1] else range(len(stops))
    above = bisect.bisect_left(stops, value)
    nearest = min((i for i in (above - 1, above) if i in movable), key=lambda i: abs(stops[i] - value), default=None)
    if nearest is None:  # two stops, the value between them
        return sorted([*stops, value])
    return [*stops[:nearest], value, *stops[nearest + 1 :]]  # in order: it replaces a neighbour


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
    st.session_state[VALUE_KEY] = _as_typed(st.session_state["threshold_number"])  # saved as typed, never rounded


def _threshold_controls(data, scores: np.ndarray) -> float:
    """A slider (stops at score quantiles, on a log scale or even, and the threshold itself) and, beside it, the
    exact value; both move and show the one threshold, in the detector's score units: the saved one (see
    :func:`_as_saved`), a suggestion or a slider stop as :func:`_as_shown` rounds it, a typed one as typed; a note
    when it lies beyond every score.  Returns it."""
    suggested = st.session_state.pop(SUGGESTED_KEY, None)
    if suggested is not None:
        st.session_state[VALUE_KEY] = suggested
    if st.session_state.get("threshold_for") != (data.machine, data.model_id):  # another machine or model
        st.session_state["threshold_for"] = (data.machine, data.model_id)
        st.session_state.pop(VALUE_KEY, None)
    if VALUE_KEY not in st.session_state:
        saved = np.isfinite(data.threshold)
        st.session_state[VALUE_KEY] = _as_saved(data.threshold, scores) if saved else _as_shown(scores.max(), scores)
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
                       format_func=_label, help=f"{detector_name(data.detector)} scores; clips above the threshold "
                       "are flagged")  # fmt: skip
    right.number_input("Threshold value", key="threshold_number", step=_step(scores, value), format=SHOWN,
                       on_change=_from_number,
                       help="Type any threshold: the slider moves to it; + and - step by about 1% of the "
                       "threshold (scores spanning orders of magnitude) or of the score range")  # fmt: skip
    _beyond_the_scores(value, scores)
    return value


def _beyond_the_scores(value: float, scores: np.ndarray) -> None:
    """What a threshold at or above every score, or below every score, means: a note (nothing when neither)."""
    low, high = float(scores.min()), float(scores.max())
    if value >= high:
        st.info(f"Threshold {_label(value)} is at or above every score (the highest is "
                f"{_end_as_read(high, value, scores)}): nothing will be flagged.")  # fmt: skip
    elif value < low:
        st.info(f"Threshold {_label(value)} is below every score (the lowest is {_end_as_read(low, value, scores)}): "
                "every clip will be flagged.")  # fmt: skip


def _end_as_read(score: float, value: float, scores: np.ndarray) -> str:
    """The lowest or highest ``score`` as the slider's end shows it (one rounding for one number: the note read the
    lowest 9.045 beside a slider starting at 9.046), with more digits only where fewer would put it on the other
    side of the threshold ``value`` (a highest score of 6617.57 beside a threshold of 6617.6 reads 6617.6)."""
    for digits in range(SIGNIFICANT, MAX_SIGNIFICANT + 1):
        shown = rounded_threshold(score, scores, digits)
        if (shown > value) == (score > value):
            break
    return _label(shown)


def _suggestions(machine: str, use_test: bool, current: float, scores: np.ndarray) -> None:
    """The suggestion buttons; a pressed one sets the threshold (as :func:`_as_shown` rounds it on ``scores``, the
    slider's) and the reason, and says in short what it did: the clips and the label policy are named once, above."""
    st.subheader("Suggestions")
    st.caption("Suggestions fit on the labelled clips the metrics are measured on (ground truth and the pilots' "
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
        value = _as_shown(suggestion.value, scores)
        # the controls already exist in this run: hand the value over to the next run, which sets them first
        st.session_state[SUGGESTED_KEY] = value
        st.session_state["threshold_reason"] = suggestion.reason
        st.session_state[FROM_SUGGESTION_KEY] = (suggestion.method, value)
        same = "unchanged: the threshold was already there" if value == current else f"was {_label(current)}"
        st.session_state[NOTE_KEY] = f"{label}: threshold {_label(value)} ({same}): {md_literal(suggestion.how)}."
        st.rerun()


def _save(machine: str, value: float) -> None:
    """The reason and the Save button (disabled for roles that may not); the threshold is saved in the actor's name
    (with sign-in off, the name given in the sidebar)."""
    st.subheader("Save")
    actor = current_actor()
    reason = st.text_input("Why this threshold?", key="threshold_reason")
    refused = refusal(actor, Action.SET_THRESHOLD)
    if action_button("Save threshold", refused, type="primary"):
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
    flags = at.confusion.tp + at.confusion.fp
    cols[0].metric("Precision", f"{at.precision:.2f}" if flags else "n/a",  # of no flag: undefined, not 0
                   help=None if flags else "Nothing is flagged at this threshold: precision is undefined")  # fmt: skip
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


def _history(machine: str, scores: np.ndarray) -> None:
    """Every threshold saved for the machine's active model, newest first, each value as the page shows a threshold
    (:func:`_as_saved` on the slider's ``scores``, every digit it has: the box and the slider read the same)."""
    st.subheader("Saved thresholds")
    records = saved_thresholds(machine)
    table = pd.DataFrame(
        [
            {
                "when (UTC)": r.set_at.strftime("%Y-%m-%d %H:%M:%S"),
                "who": r.set_by,
                "value": _as_saved(r.value, scores),  # a number (it sorts as one), shown "plain": every digit it has
                "method": method_name(r.method),
                "reason": r.reason,
            }
            for r in records
        ],  # fmt: skip
        columns=["when (UTC)", "who", "value", "method", "reason"],
    )
    st.caption("Newest first; the first is the active threshold. Double-click a reason to read it whole.")
    st.dataframe(table, hide_index=True, key="threshold_history",
                 column_config={"value": st.column_config.NumberColumn(format="plain"),
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
    version = data_version(machine)
    data = _data(machine, use_test, version)
    all_scores = _every_score(data)
    if not all_scores.size and not use_test:
        all_scores = _only_in_the_test_split(machine, version)
    if not all_scores.size:
        st.info(f"No scored clip to tune on yet for this machine ({data.label_source}).")
        _history(machine, all_scores)
        return
    value = _threshold_controls(data, all_scores)
    if data.scores.size or data.unlabelled_scores.size:  # else: nothing to measure without the test split
        _metrics_and_charts(data, value, data.flagged_share(value), plots.spans_orders(all_scores))
    _suggestions(machine, use_test, value, all_scores)
    _save(machine, value)
    _history(machine, all_scores)


def _every_score(data) -> np.ndarray:
    """The scores of every clip in ``data``'s set, labelled or not (the unlabelled as sampled)."""
    return np.concatenate([data.scores, data.unlabelled_scores])


def _only_in_the_test_split(machine: str, version: tuple) -> np.ndarray:
    """With the test split left out and no clip left: every score with it (for the slider, so that a threshold can
    still be set by hand), after a note saying that all the labelled clips are there; empty when none is."""
    with_test = _data(machine, True, version)
    scores = _every_score(with_test)
    if scores.size:
        st.info(f"All {with_test.scores.size} labelled clips of this machine are in the test split (the others are "
                "the model's training clips): tick **Include the test split** to tune on them. Meanwhile the slider "
                "spans their scores, to set a threshold by hand.")  # fmt: skip
    return scores


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
