"""Overview: per machine, clips, flags and the pilots' progress; the active detector and threshold; drift."""

from __future__ import annotations

import logging

import pandas as pd
import plotly.express as px
import streamlit as st

from core.detection.selection import model_name
from core.errors import MachineSoundError
from core.workflows.catalogue import clip_counts, recent_rejections
from core.workflows.drift import (
    MAJOR_PSI,
    MODERATE_PSI,
    RETRAIN,
    RETRAIN_ADVICE,
    DriftReport,
    drift_cache_key,
    drift_report,
)
from core.workflows.triage import machine_summaries
from dashboard.components.format import MISSING, number, when
from dashboard.components.text import md_literal, plot_literal
from dashboard.registry import page_script
from dashboard.theme import LABEL_COLOURS, LABEL_ORDER

DRIFT_TTL_S = 300  # a drift report is recomputed after 5 minutes, or at once for a new active model


@st.cache_data(ttl=DRIFT_TTL_S, show_spinner="Comparing recent clips with training clips…", max_entries=64)
def _drift(machine: str, model_id: int | None) -> DriftReport:
    """Cached per machine and active model for ``DRIFT_TTL_S``: not per clip or verdict count, or every
    ingest and verdict would reread the recent clips' audio.  Read-only: clips not scored yet are left
    out of the score comparison, never scored here."""
    return drift_report(machine, score_missing=False)


def _drift_section(machines: list[str]) -> None:
    st.subheader("Drift")
    st.caption(
        "Each machine's newest clips (up to 50) against the clips its active model learned from: anomaly scores and "
        f"per-band log-mel levels, by population stability index (PSI: below {MODERATE_PSI} stable, up to "
        f"{MAJOR_PSI} moderate, above {MAJOR_PSI} a major shift) and Kolmogorov-Smirnov tests; "
        f"cached for {DRIFT_TTL_S // 60} minutes."
    )
    reports = []
    for machine in machines:
        try:
            reports.append(_drift(*drift_cache_key(machine)))
        except MachineSoundError as exc:
            st.error(f"Drift of {md_literal(machine)} could not be computed: {md_literal(exc.detail)}")
        except Exception as exc:  # one machine's failure is shown, never the whole page's
            logging.getLogger(__name__).exception("drift of %s failed", machine)
            st.error(f"Drift of {md_literal(machine)} could not be computed "
                     f"({type(exc).__name__}: {md_literal(exc)}).")  # fmt: skip
    retrain = [r for r in reports if r.state == RETRAIN]
    if retrain:
        st.warning(
            f"Retrain suggested for {md_literal(', '.join(r.machine for r in retrain))}: recent clips no longer look "
            f"like the clips the model learned from. The command below will {RETRAIN_ADVICE}: confirm recent clips "
            f"that sound normal on the **Triage** page first, so that the new model learns their sound."
        )
        st.code("\n".join(r.retrain_command for r in retrain), language="bash")  # shown as is, quoted for the shell
        st.page_link(page_script("compare"), label="Or train it here: **Train detector** on Compare models",
                     icon=":material/model_training:")  # fmt: skip
    if not reports:
        return
    table = pd.DataFrame(
        [{"machine": r.machine, "state": r.state, "score PSI": number(r.score_psi, 2),
          "level PSI": number(r.level_psi, 2), "recent": r.n_recent, "reference": r.n_reference} for r in reports]
    )  # fmt: skip
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "machine": st.column_config.TextColumn("machine", pinned=True),
            "score PSI": st.column_config.TextColumn(help=f"{MISSING}: not compared"),
            "level PSI": st.column_config.TextColumn(
                help=f"the largest PSI over the mel bands ({MISSING}: not compared)"
            ),  # fmt: skip
            "recent": st.column_config.NumberColumn(help="recent clips compared"),
            "reference": st.column_config.NumberColumn(help="training clips compared with"),
        },
    )
    for r in reports:  # the reasons once, each in full (a table cell cut them off)
        if r.reasons:
            reasons = "".join(f"\n- {md_literal(reason)}" for reason in r.reasons)
            st.markdown(f"**{md_literal(r.machine)}** ({md_literal(r.state)}):{reasons}")


# The machines table's columns, what matters most first: on a 1280 px screen the first eight are in view. (A comment:
# a bare string here is drawn on the page by Streamlit's magic, above the title.)
MACHINE_COLUMNS = ("machine", "detector", "threshold", "clips", "flagged", "unreviewed", "last clip", "last verdict",
                   "confirmed", "rejected", "unsure", "disputed", "2nd opinion", "settled")  # fmt: skip
RENAMED = {"last_ingested_at": "last clip", "last_verdict_at": "last verdict", "second_opinion": "2nd opinion"}


def _machines_table(summaries: pd.DataFrame) -> pd.DataFrame:
    """The machines as shown: words where a value is missing (no model yet, no verdict yet), never ``None``;
    thresholds in plain decimals; column names in words, in the order of ``MACHINE_COLUMNS``."""
    trained = [isinstance(d, str) for d in summaries["detector"]]
    return (
        summaries.assign(
            detector=[
                model_name(d, int(v), front_end=f) if ok else "not trained"
                for d, v, f, ok in zip(summaries["detector"], summaries["version"], summaries["front_end"], trained,
                                       strict=True)  # fmt: skip
            ],
            threshold=[number(t) if ok else "no model" for t, ok in zip(summaries["threshold"], trained, strict=True)],
            last_ingested_at=[when(t, missing="never") for t in summaries["last_ingested_at"]],
            last_verdict_at=[when(t, missing="none yet") for t in summaries["last_verdict_at"]],
        )
        .rename(columns=RENAMED)
        .loc[:, list(MACHINE_COLUMNS)]
    )


def _machine_columns(summaries: pd.DataFrame) -> dict:
    """How the machines table's columns are drawn: the counts narrow (with what they count as help), so that the
    detector, threshold and latest activity are in view beside them."""
    counts = {
        "clips": "clips registered",
        "flagged": "clips the active model flags",
        "confirmed": "judged clips whose verdicts say abnormal only",
        "rejected": "judged clips whose verdicts say normal only",
        "unsure": "judged clips with only unsure verdicts",
        "disputed": "clips judged both normal and abnormal, not settled yet",
        "2nd opinion": "flagged clips of the overlap sample with one verdict, awaiting a second opinion",
        "settled": "clips a final verdict labels (Review page)",
    }
    most = max(int(summaries["flagged"].max()), 1)
    unreviewed = st.column_config.ProgressColumn(min_value=0, max_value=most, format="%d", width="small",
                                                 help="flagged clips awaiting a verdict")  # fmt: skip
    return {
        "machine": st.column_config.TextColumn("machine", pinned=True),
        "detector": st.column_config.TextColumn(help="the active model: detector and version"),
        "threshold": st.column_config.TextColumn(help="the active model's threshold"),
        "unreviewed": unreviewed,
        "last clip": st.column_config.TextColumn(help="when the newest clip was registered"),
        "last verdict": st.column_config.TextColumn(help="when the latest verdict was given"),
        **{name: st.column_config.NumberColumn(width="small", help=what) for name, what in counts.items()},
    }


def render() -> None:
    st.title("Overview")
    summaries = pd.DataFrame([vars(s) for s in machine_summaries()])
    counts = pd.DataFrame([vars(c) for c in clip_counts()])
    rejected = pd.DataFrame(recent_rejections())
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
    st.dataframe(_machines_table(summaries), hide_index=True, column_config=_machine_columns(summaries))
    counts["machine"] = (counts["machine_type"] + "/" + counts["machine_id"]).map(plot_literal)  # folder names
    chart = px.bar(
        counts, x="machine", y="n_clips", color="label", color_discrete_map=LABEL_COLOURS,
        category_orders={"label": LABEL_ORDER}, labels={"n_clips": "clips"}, title="Clips per machine and label",
    )  # fmt: skip
    st.plotly_chart(chart)
    _drift_section(list(summaries["machine"]))
    with st.expander("By machine, label and split"):
        st.dataframe(counts[["machine_type", "machine_id", "label", "split", "n_clips"]], hide_index=True)
    if not rejected.empty:
        with st.expander(f"Files refused at ingest ({len(rejected)} most recent)"):
            st.dataframe(rejected, hide_index=True)


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
