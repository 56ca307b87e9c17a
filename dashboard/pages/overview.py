"""Overview: per machine, clips, flags and the pilots' progress; the active detector and threshold."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from core.triage import machine_summaries
from dashboard.theme import LABEL_COLOURS, LABEL_ORDER
from db.queries import clip_counts, recent_rejections
from db.session import session_scope


def render() -> None:
    st.title("Overview")
    summaries = pd.DataFrame([vars(s) for s in machine_summaries()])
    with session_scope() as session:
        counts = pd.DataFrame([vars(c) for c in clip_counts(session)])
        rejected = pd.DataFrame(
            [{"path": r.path, "reason": r.reason, "detail": r.detail, "seen at": r.seen_at}
             for r in recent_rejections(session)]
        )  # fmt: skip
    if counts.empty:
        st.info(
            "No clips yet. Generate a demo plant with `python -m core demo DIR` and register it with "
            "`python -m core ingest DIR`, or add recordings on the **Data** page (MIMII or DCASE layouts)."
        )
        return
    cols = st.columns(5)
    cols[0].metric("Clips", int(summaries["clips"].sum()))
    cols[1].metric("Machines", len(summaries))
    cols[2].metric("Flagged", int(summaries["flagged"].sum()))
    cols[3].metric("Awaiting review", int(summaries["unreviewed"].sum()))
    reviewed = int(summaries["flagged"].sum() - summaries["unreviewed"].sum())
    cols[4].metric("Flags reviewed", f"{reviewed / max(int(summaries['flagged'].sum()), 1):.0%}")

    st.subheader("Machines")
    table = summaries.assign(
        detector=[f"{d} v{v:.0f}" if isinstance(d, str) else "not trained" for d, v in
                  zip(summaries["detector"], summaries["version"], strict=True)],
    ).drop(columns=["version"])  # fmt: skip
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "machine": st.column_config.TextColumn("machine", pinned=True),
            "threshold": st.column_config.NumberColumn(format="%.4g"),
            "unreviewed": st.column_config.ProgressColumn(
                "unreviewed", min_value=0, max_value=max(int(summaries["flagged"].max()), 1), format="%d"
            ),
            "last_ingested_at": st.column_config.DatetimeColumn("last clip", format="YYYY-MM-DD HH:mm"),
            "last_verdict_at": st.column_config.DatetimeColumn("last verdict", format="YYYY-MM-DD HH:mm"),
        },
    )
    counts["machine"] = counts["machine_type"] + "/" + counts["machine_id"]
    chart = px.bar(
        counts, x="machine", y="n_clips", color="label", color_discrete_map=LABEL_COLOURS,
        category_orders={"label": LABEL_ORDER}, labels={"n_clips": "clips"}, title="Clips per machine and label",
    )  # fmt: skip
    st.plotly_chart(chart)
    with st.expander("By machine, label and split"):
        st.dataframe(counts[["machine_type", "machine_id", "label", "split", "n_clips"]], hide_index=True)
    if not rejected.empty:
        with st.expander(f"Files refused at ingest ({len(rejected)} most recent)"):
            st.dataframe(rejected, hide_index=True)


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
