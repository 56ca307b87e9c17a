"""Agreement: how far the annotators agree per machine and per pair (raw agreement, Cohen's kappa,
Krippendorff's alpha, each with the clips behind it), and how often an adjudication overruled each, for
managers."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import Action
from core.workflows.agreement import agreement_report
from dashboard.components.auth import current_actor

FIGURE = st.column_config.NumberColumn(format="%.2f")


def _machine(report: dict) -> None:
    st.subheader(report["machine"])
    cols = st.columns(4)
    cols[0].metric("Clips judged twice or more", report["n_double"])
    names = {"agreement": "Raw agreement", "kappa": "Cohen's kappa", "alpha": "Krippendorff's alpha"}
    for col, (key, name) in zip(cols[1:], names.items(), strict=True):
        col.metric(name, "n/a" if report[key] is None else f"{report[key]:.2f}")
    if report["pairs"]:
        pairs = pd.DataFrame([{"annotators": " & ".join(p["annotators"]), "clips": p["n_clips"],
                               "agreement": p["agreement"], "kappa": p["kappa"]} for p in report["pairs"]])  # fmt: skip
        st.dataframe(pairs, hide_index=True, column_config={"agreement": FIGURE, "kappa": FIGURE})
    if report["annotators"]:
        people = pd.DataFrame(report["annotators"]).rename(columns={
            "n_verdicts": "verdicts", "n_adjudicated": "adjudicated", "n_overruled": "overruled",
            "overruled_rate": "overruled share"})  # fmt: skip
        st.dataframe(people, hide_index=True, column_config={"overruled share": FIGURE})


def render() -> None:
    st.title("Annotator agreement")
    actor = current_actor()
    if not actor.may(Action.VIEW_AUDIT):
        st.warning("The agreement report is for managers and admins.")
        return
    st.caption("On the clips two or more annotators judged (normal, abnormal and unsure as three categories): raw "
               "agreement is the share of verdict pairs that say the same; Cohen's kappa and Krippendorff's alpha "
               "(nominal) discount chance agreement (1 = perfect, 0 = chance). n/a: too few clips, or one category "
               "only. A pilot is overruled when an adjudication says otherwise than their normal or "
               "abnormal.")  # fmt: skip
    reports = agreement_report(actor=actor)
    if not reports:
        st.info("No machines yet.")
        return
    for report in reports:
        _machine(report)


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
