"""Compare models: two models of a machine, side by side on the same test clips."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from core.access import Action, why_not
from core.commands import core_command
from core.detection.registry import detector_names
from core.workflows.comparison import compare_models, model_choices
from core.workflows.evaluation import automatic_choice
from core.workflows.training import activate, active_model_id
from dashboard.components import plots
from dashboard.components.auth import current_actor
from dashboard.components.pickers import machine_picker
from dashboard.components.text import md_literal


def render() -> None:
    st.title("Compare models")
    machine = machine_picker(require_model=True)
    if machine is None:
        return
    choices = dict(model_choices(machine))
    if len(choices) < 2:
        trained = {label.split()[0] for label in choices.values()}
        other = next((name for name in detector_names() if name not in trained), None)
        how = f"for example with {other}:" if other else "a retrained version."
        st.info(f"{md_literal(machine)} has only one model so far. Train another to compare, {how}")
        if other:
            st.code(core_command("train", "--machine", machine, "--detector", other), language="bash")
        return
    ids = list(choices)
    preselected = st.session_state.get("compare_models", ids[:2])
    left, right = st.columns(2)
    a = left.selectbox("Model A", ids, index=ids.index(preselected[0]) if preselected[0] in ids else 0,
                       format_func=choices.get)  # fmt: skip
    b = right.selectbox("Model B", ids, index=ids.index(preselected[1]) if preselected[1] in ids else 1,
                        format_func=choices.get)  # fmt: skip
    result = compare_models(machine, [a, b])
    st.caption(f"Test set: {md_literal(result.test_set)} ({result.n_test} clips scored by both). Abnormal is the "
               "positive class.")  # fmt: skip
    for warning in result.warnings:
        st.warning(md_literal(warning))
    cols = st.columns(2)
    for column, r in zip(cols, result.results, strict=True):
        column.plotly_chart(plots.confusion(r.at_threshold.confusion, f"{r.name} at {r.at_threshold.threshold:.4g}"),
                            key=f"cm_{r.model_id}")  # fmt: skip
    fmt = lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else round(v, 3)  # noqa: E731
    table = pd.DataFrame(
        {
            r.name: {
                "precision": fmt(r.at_threshold.precision),
                "recall": fmt(r.at_threshold.recall),
                "F1": fmt(r.at_threshold.f1),
                "accuracy": fmt(r.at_threshold.accuracy),
                "AUC": fmt(r.auc),
                "pAUC": fmt(r.pauc),
            }  # fmt: skip
            for r in result.results
        }
    )
    st.dataframe(table)
    active = active_model_id(machine)
    actor = current_actor()
    refused = why_not(actor.role, Action.ACTIVATE_MODEL)
    buttons = st.columns(len(result.results))
    for column, r in zip(buttons, result.results, strict=True):
        if r.model_id == active:
            column.caption(f"{md_literal(r.name)} is the active model of {md_literal(machine)}.")
        elif column.button(f"Make {md_literal(r.name)} active", key=f"activate_{r.model_id}", disabled=bool(refused),
                           help=refused):  # fmt: skip
            activate(machine, model_id=r.model_id, actor=actor)
            st.toast(f"{md_literal(r.name)} now scores {md_literal(machine)}'s clips; new flags follow its threshold.")
            st.rerun()
    automatic_choice_section(machine)


def automatic_choice_section(machine: str) -> None:
    """The automatic choice (``train --detector auto``): made from training clips only, its evidence and uncertainty."""
    st.subheader("Automatic choice (training data only)")
    choice = automatic_choice(machine)
    if choice is None:
        st.caption(f"No automatic choice for {md_literal(machine)} yet. It is made from the training clips only "
                "(held-out normal clips against synthetic faults and other machines' clips), never the test "
                "split:")  # fmt: skip
        st.code(core_command("train", "--machine", machine, "--detector", "auto"), language="bash")
        return
    chosen = choice["chosen"] + (f" ({', '.join(choice['members'])})" if choice["members"] else "")
    text = f"Chosen: **{md_literal(chosen)}** (model {choice['model_id']}, v{choice['version']}). "
    text += f"{md_literal(choice['note'])}."
    (st.success if choice["clear"] and choice["n_clips"] >= 8 else st.warning)(text)
    kinds = sorted({k for e in choice["evidence"].values() for k in e["by_kind"]})
    table = pd.DataFrame(
        [{"candidate": label, "pseudo-AUC": e["auc"], "± (s.e.)": e["se"], **{k: e["by_kind"].get(k) for k in kinds}}
         for label, e in sorted(choice["evidence"].items(), key=lambda item: -item[1]["auc"])]
    )  # fmt: skip
    st.dataframe(table, hide_index=True)
    st.caption(f"{choice['n_clips']} normal training clips, {choice['folds']} cross-validation folds, "
               f"{choice['n_other_clips']} clips of other machines as pseudo-anomalies. Pseudo-AUC: how well a "
               "candidate ranks held-out normal clips below pseudo-anomalies; the test split is never "
               "used.")  # fmt: skip


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
