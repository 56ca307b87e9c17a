"""Review: the clips the pilots could not settle (disputed, unsure; on request, those retraining left out for
want of a second opinion), each heard and seen with every verdict, note and anomaly type, and the engineer's
final verdict with its reason."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import Action
from core.errors import MachineSoundError
from core.workflows.review import OPEN_STATES, adjudicate, adjudication_history, review_queue
from core.workflows.triage import anomaly_types
from dashboard.components.annotator import unnamed
from dashboard.components.auth import current_actor, role_shown
from dashboard.components.clip_view import load_view, render_details, render_player, render_spectrogram
from dashboard.components.format import count
from dashboard.components.pickers import machine_picker
from dashboard.components.text import md_literal

SHOW = {"Open: disputed and unsure": (False, False), "Open, with clips awaiting a second opinion": (False, True),
        "Everything, settled included": (True, True)}  # fmt: skip
NO_TYPE = "— not specified —"


def _verdicts_table(item) -> None:
    rows = [{"annotator": v["annotator"], "role": role_shown(v["role"]), "verdict": v["verdict"],
             "anomaly type": v["anomaly_type"] or "", "note": v["note"], "at": v["at"]}
            for v in item.verdicts]  # fmt: skip
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    else:
        st.caption("No standing verdict (every one was undone).")


def _history(clip_id: int) -> None:
    past = adjudication_history(clip_id, actor=current_actor())
    if not past:
        return
    with st.expander(f"Adjudications of this clip ({len(past)}; the last one stands)", expanded=True):
        for h in past:
            kind = f" ({md_literal(h['anomaly_type'])})" if h["anomaly_type"] else ""
            st.markdown(f"- {h['at']:%Y-%m-%d %H:%M} · {md_literal(h['adjudicator'])} ({role_shown(h['role'])}): "
                        f"**{h['verdict']}**{kind} — {md_literal(h['reason'])}")  # fmt: skip


def _ruling_form(clip_id: int) -> None:
    """The final verdict, chosen (none preselected), with its anomaly type and reason; kept as typed until saved."""
    keys = (f"ruling_{clip_id}", f"ruling_type_{clip_id}", f"ruling_reason_{clip_id}")
    with st.form(f"adjudicate_{clip_id}"):
        # one row and a two-line reason box: the button stays in view on a laptop screen
        left, right = st.columns(2, vertical_alignment="bottom")
        verdict = left.radio("Final verdict", ["abnormal", "normal"], index=None, horizontal=True, key=keys[0])
        kind = right.selectbox("Anomaly type (with abnormal)", [NO_TYPE, *anomaly_types()], key=keys[1])
        reason = st.text_area("Reason (kept with the verdict)", key=keys[2], height=68)
        submitted = st.form_submit_button("Record the final verdict", type="primary")
    if not submitted:
        return
    if verdict is None:  # never a verdict the reviewer did not choose; the reason typed stays in the box
        st.error("Not recorded: choose the final verdict, abnormal or normal.")
        return
    if missing := unnamed(current_actor()):  # sign-in off: a final verdict names who made it, as a verdict does
        st.error(f"Not recorded. {missing}")
        return
    try:
        adjudicate(clip_id, verdict, reason, anomaly_type=None if kind == NO_TYPE else kind, actor=current_actor())
    except MachineSoundError as exc:
        st.error(f"Not recorded: {md_literal(exc.detail)}")
        return
    st.session_state["ruling_saved"] = f"#{clip_id} settled as {verdict}"
    for key in keys:  # the form starts empty again
        del st.session_state[key]
    st.rerun()


def render() -> None:
    st.title("Review queue")
    actor = current_actor()
    if not actor.may(Action.ADJUDICATE):
        st.warning("The review queue is for engineers, managers and admins.")
        return
    machine = machine_picker()
    if machine is None:
        return
    show = st.sidebar.radio("Show", list(SHOW), key="review_show")
    settled, second = SHOW[show]
    items = review_queue(machine, settled=settled, second_opinions=second, actor=actor)
    if "ruling_saved" in st.session_state:
        st.success(f"Saved: {st.session_state.pop('ruling_saved')}.")
    if not items:
        st.success("Nothing to review for this machine.")
        return
    n_open = sum(item.state in OPEN_STATES for item in items)
    st.markdown(f"Awaiting a final verdict: **{count(n_open, 'clip')}** of **{md_literal(machine)}**.")
    labels = {item.clip_id: f"#{item.clip_id} · {item.state}" for item in items}
    clip_id = st.selectbox("Clip", list(labels), format_func=labels.get, key="review_clip")
    _clip_and_ruling(next(i for i in items if i.clip_id == clip_id))


def _clip_and_ruling(item) -> None:
    """The clip's facts and player, its verdicts and the final-verdict form in view; its charts below them."""
    details, views = load_view(item.clip_id, blind=False)  # a clip it cannot show: the reason is on screen
    if views is not None:
        render_player(details, views, key="review")
    st.subheader("Verdicts")
    _verdicts_table(item)
    _history(item.clip_id)
    _ruling_form(item.clip_id)
    st.caption("The final verdict stands above every annotator's: exports, thresholds, comparisons and retraining "
               "follow it. Earlier ones are kept.")  # fmt: skip
    if views is not None:
        st.subheader("The clip")
        render_details(details, views, key="review")
        render_spectrogram(details, views, key="review")


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
