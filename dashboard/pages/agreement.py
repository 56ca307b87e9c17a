"""Agreement: how far the annotators agree per machine and per pair (raw agreement, Cohen's kappa,
Krippendorff's alpha, each with the clips behind it), and how often an adjudication overruled each, for
managers."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import Action
from core.workflows.agreement import agreement_report
from dashboard.components.auth import current_actor
from dashboard.components.format import fixed

UNDEFINED = "n/a"  # a figure too few clips (or one category only) leave undefined, in the headline and the tables


def _figure(value: float | None) -> str:
    """``value`` with two decimals (``0.67``), or ``n/a`` where it is undefined (None)."""
    return fixed(value, 2, missing=UNDEFINED)


def _machine(report: dict) -> None:
    st.subheader(report["machine"])
    cols = st.columns(4)
    cols[0].metric("Clips judged twice or more", report["n_double"])
    names = {"agreement": "Raw agreement", "kappa": "Cohen's kappa", "alpha": "Krippendorff's alpha"}
    for col, (key, name) in zip(cols[1:], names.items(), strict=True):
        col.metric(name, _figure(report[key]))
    if report["pairs"]:
        pairs = pd.DataFrame([{"annotators": " & ".join(p["annotators"]), "clips": p["n_clips"],
                               "agreement": _figure(p["agreement"]), "kappa": _figure(p["kappa"])}
                              for p in report["pairs"]])  # fmt: skip
        st.dataframe(pairs, hide_index=True)
    if report["annotators"]:
        people = pd.DataFrame(report["annotators"]).rename(columns={
            "n_verdicts": "verdicts", "n_adjudicated": "adjudicated", "n_overruled": "overruled",
            "overruled_rate": "overruled share"})  # fmt: skip
        people["overruled share"] = [_figure(v) for v in people["overruled share"]]
        st.dataframe(people, hide_index=True)


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
