"""Overview: what is in the database, per machine and label, and which files were refused."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard.theme import LABEL_COLOURS, LABEL_ORDER
from db.queries import clip_counts, recent_rejections
from db.session import session_scope


def render() -> None:
    st.title("Overview")
    with session_scope() as session:
        counts = pd.DataFrame([vars(c) for c in clip_counts(session)])
        rejected = pd.DataFrame(
            [
                {"path": r.path, "reason": r.reason, "detail": r.detail, "seen at": r.seen_at}
                for r in recent_rejections(session)
            ]
        )
    if counts.empty:
        st.info(
            "No clips yet. Generate a demo plant with `python -m core demo DIR` and register it with "
            "`python -m core ingest DIR`, or ingest your own recordings (MIMII or DCASE layouts)."
        )
        return
    counts["machine"] = counts["machine_type"] + "/" + counts["machine_id"]
    by_label = counts.groupby("label")["n_clips"].sum()
    cols = st.columns(4)
    cols[0].metric("Clips", int(counts["n_clips"].sum()))
    cols[1].metric("Machines", counts["machine"].nunique())
    cols[2].metric("Labelled abnormal", int(by_label.get("abnormal", 0)))
    cols[3].metric("Unlabelled", int(by_label.get("unknown", 0)))

    per_machine = counts.pivot_table(index="machine", columns="label", values="n_clips", aggfunc="sum", fill_value=0)
    per_machine = per_machine.reindex(columns=[c for c in LABEL_ORDER if c in per_machine.columns])
    left, right = st.columns([3, 2])
    chart = px.bar(
        counts,
        x="machine",
        y="n_clips",
        color="label",
        color_discrete_map=LABEL_COLOURS,
        category_orders={"label": LABEL_ORDER},
        labels={"n_clips": "clips"},
        title="Clips per machine and label",
    )
    left.plotly_chart(chart)
    right.subheader("Clips per machine")
    right.dataframe(per_machine)
    with st.expander("By machine, label and split"):
        st.dataframe(counts[["machine_type", "machine_id", "label", "split", "n_clips"]], hide_index=True)
    if not rejected.empty:
        with st.expander(f"Files refused at ingest ({len(rejected)} most recent)"):
            st.dataframe(rejected, hide_index=True)
