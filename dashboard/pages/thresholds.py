"""Thresholds: move the threshold and watch precision, recall, F1 and the confusion matrix follow."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.access import Action, why_not
from core.detection.metrics import metrics_at, partial_auc, roc_auc, sweep
from core.errors import MachineSoundError
from core.workflows.tuning import SuggestOptions, data_version, set_threshold, suggest, tuning_data
from dashboard.components import plots
from dashboard.components.auth import NAME_KEY, current_actor
from dashboard.components.pickers import machine_picker
from dashboard.components.text import md_literal


@st.cache_data(show_spinner="Scoring and gathering labels…", max_entries=32)
def _data(machine: str, use_test: bool, version: tuple):
    """Cached per machine, test-split choice and data version: a new model, score, verdict or threshold
    invalidates it."""
    return tuning_data(machine, use_test=use_test)


def _suggestions(machine: str, use_test: bool) -> None:
    st.subheader("Suggestions")
    st.caption("Suggestions fit on the same labelled clips as the metrics above.")
    cols = st.columns(4, vertical_alignment="bottom")
    target = cols[2].number_input("Target recall", 0.05, 1.0, 0.9, 0.05)
    cost_miss = cols[3].number_input("Miss cost (x false alarm)", 0.1, 1000.0, 10.0)
    methods = {
        cols[0].button("Gamma quantile 0.9"): SuggestOptions("gamma"),
        cols[1].button("Max F1"): SuggestOptions("max_f1", use_test=use_test),
        cols[2].button("Target recall"): SuggestOptions("target_recall", target=target, use_test=use_test),
        cols[3].button("Min cost"): SuggestOptions("min_cost", cost_miss=cost_miss, use_test=use_test),
    }
    for pressed, options in methods.items():
        if pressed:
            try:
                suggestion = suggest(machine, options)
            except MachineSoundError as exc:
                st.warning(md_literal(exc.detail))
                return
            # the slider already exists in this run: hand the value over to the next run, which sets it first
            st.session_state["threshold_suggested"] = float(suggestion.value)
            st.session_state["threshold_reason"] = suggestion.reason
            st.rerun()


def _save(machine: str, value: float) -> None:
    """The reason, who sets it (with sign-in off), and the Save button (disabled for roles that may not)."""
    st.subheader("Save")
    actor = current_actor()
    reason = st.text_input("Why this threshold?", key="threshold_reason")
    who = actor.name  # the signed-in user; with sign-in off, whoever says so
    if actor.operator:
        who = st.text_input("Set by", value=st.session_state.get(NAME_KEY, ""), key="threshold_by")
    refused = why_not(actor.role, Action.SET_THRESHOLD)
    if st.button("Save threshold", type="primary", disabled=bool(refused), help=refused):
        try:
            set_threshold(machine, value, set_by=who, reason=reason or "set on the threshold page", actor=actor)
        except MachineSoundError as exc:
            st.error(md_literal(exc.detail))
        else:
            st.success(f"Threshold {value:.4g} saved for {md_literal(machine)}.")


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
        return
    low, high = float(all_scores.min()), float(all_scores.max())
    start = st.session_state.pop("threshold_suggested", None)
    if start is None:
        start = st.session_state.get("threshold_slider", data.threshold if np.isfinite(data.threshold) else high)
    st.session_state["threshold_slider"] = float(np.clip(start, low, high))
    value = st.slider("Threshold", low, high, key="threshold_slider", format="%.4g",
                      help=f"{data.detector} scores; clips above the threshold are flagged")  # fmt: skip
    flagged_share = data.flagged_share(value)
    cols = st.columns(5)
    cols[4].metric("Expected flags per day", f"{flagged_share * data.clips_per_day:.1f}",
                   help="Share of clips above the threshold x clips ingested per day (last 7 days)")  # fmt: skip
    if data.is_abnormal.size and data.is_abnormal.any() and not data.is_abnormal.all():
        at = metrics_at(data.is_abnormal, data.scores, value)
        cols[0].metric("Precision", f"{at.precision:.2f}")
        cols[1].metric("Recall", f"{at.recall:.2f}")
        cols[2].metric("F1", f"{at.f1:.2f}")
        cols[3].metric("AUC / pAUC", f"{roc_auc(data.is_abnormal, data.scores):.2f} / "
                                     f"{partial_auc(data.is_abnormal, data.scores):.2f}")  # fmt: skip
        st.caption(f"Labels: {data.label_source}. Abnormal is the positive class.")
        sw = sweep(data.is_abnormal, data.scores)
        left, right = st.columns(2)
        left.plotly_chart(plots.confusion(at.confusion, f"Confusion matrix at {value:.4g}"), key="cm")
        right.plotly_chart(plots.score_histogram(data.scores, data.is_abnormal, value, data.label_source), key="hist")
        left, middle, right = st.columns(3)
        left.plotly_chart(plots.against_threshold(sw, value), key="prf")
        middle.plotly_chart(plots.precision_recall(sw, marker=(at.recall, at.precision)), key="pr")
        fpr = sw.fp / max(int((~data.is_abnormal).sum()), 1)
        right.plotly_chart(plots.curve(fpr, sw.recall, title="ROC", x_title="false positive rate",
                                       y_title="true positive rate"), key="roc")  # fmt: skip
        st.plotly_chart(plots.score_scatter(data.scores, data.is_abnormal, value), key="scatter")
    else:
        st.info(f"Precision and recall need labelled normal and abnormal clips ({data.label_source}).")
    _suggestions(machine, use_test)
    _save(machine, value)


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
