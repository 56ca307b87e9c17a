"""Triage: the flagged clips nobody has judged yet, one at a time, with one-click verdicts."""

from __future__ import annotations

import streamlit as st

from core.errors import MachineSoundError
from core.workflows.triage import (
    QUEUE_ORDERS,
    anomaly_types,
    clip_label,
    record_verdict,
    review_is_blind,
    review_list,
    triage_queue,
    undo_last,
)
from dashboard.components.annotator import annotator_name
from dashboard.components.auth import current_actor
from dashboard.components.clip_view import render_clip, render_history
from dashboard.components.pickers import machine_picker
from dashboard.components.text import md_literal

NEW_TYPE = "+ new type…"
NO_TYPE = "— not specified —"


def _record(clip_id: int, name: str, verdict: str) -> None:
    """Button callback: runs before the next script run, so the verdict is kept even when the clip
    has meanwhile left this pilot's queue (another pilot judged it first: a possible disagreement)."""
    kind = st.session_state.get(f"type_{clip_id}")
    if kind == NEW_TYPE:
        kind = st.session_state.get(f"newtype_{clip_id}", "").strip() or None
    elif kind == NO_TYPE:
        kind = None
    note = st.session_state.get(f"note_{clip_id}", "")
    try:
        record_verdict(clip_id, name, verdict, anomaly_type=kind if verdict == "abnormal" else None, note=note,
                       actor=current_actor())  # fmt: skip
    except MachineSoundError as exc:  # callbacks run outside the page's error guard
        st.session_state["verdict_error"] = md_literal(exc.detail)
        return
    st.session_state["last_verdict"] = f"#{clip_id}: {verdict}" + (  # Markdown: the type as typed
        f" ({md_literal(kind)})" if verdict == "abnormal" and kind else ""
    )
    st.session_state["toast"] = True
    found = clip_label(clip_id)
    others = {who: v.verdict for who, v in found.verdicts.items() if who != name.strip()}
    if others:  # someone judged it meanwhile: both verdicts are kept, nobody's is overwritten
        said = ", ".join(f"{md_literal(who)} said {v}" for who, v in others.items())
        st.session_state["verdict_notice"] = f"#{clip_id} was also judged by others ({said}); every verdict is kept" + (
            ", and the clip is on the review list of disagreements." if found.disputed else "."
        )


def _verdict_form(clip_id: int, name: str) -> None:
    types = anomaly_types()
    left, right = st.columns(2)
    kind = left.selectbox("Anomaly type (for Confirm)", [NO_TYPE, *types, NEW_TYPE], key=f"type_{clip_id}")
    if kind == NEW_TYPE:
        left.text_input("New anomaly type", key=f"newtype_{clip_id}")
    right.text_input("Note (optional)", key=f"note_{clip_id}")
    buttons = st.columns(3)
    choices = (("Confirm abnormal", "abnormal", "primary"), ("Reject (normal)", "normal", "secondary"),
               ("Unsure", "unsure", "secondary"))  # fmt: skip
    for column, (label, verdict, kind_of_button) in zip(buttons, choices, strict=True):
        column.button(label, key=f"{verdict}_{clip_id}", type=kind_of_button, use_container_width=True,
                      on_click=_record, args=(clip_id, name, verdict))  # fmt: skip


def _annotator() -> str | None:
    """Who judges: the signed-in user; with sign-in off, a name given once per session."""
    actor = current_actor()
    return annotator_name() if actor.operator else actor.name


def render() -> None:
    st.title("Triage queue")
    name = _annotator()
    if name is None:
        return
    blind = review_is_blind(current_actor())
    machine = machine_picker(require_model=True)
    if machine is None:
        return
    order_label = st.sidebar.radio("Order", list(QUEUE_ORDERS), key="queue_order")
    queue = triage_queue(machine, QUEUE_ORDERS[order_label])
    top = st.columns([3, 1])
    top[0].markdown(f"**{len(queue)}** flagged clip(s) of **{md_literal(machine)}** await a verdict.")
    if "verdict_notice" in st.session_state:
        st.info(st.session_state.pop("verdict_notice"))
    if "verdict_error" in st.session_state:
        st.error(f"The verdict was not saved: {st.session_state.pop('verdict_error')}")
    if "last_verdict" in st.session_state:
        top[0].caption(f"Last saved: {st.session_state['last_verdict']}.")
        if st.session_state.pop("toast", False):
            st.toast(f"Saved {st.session_state['last_verdict']}", icon=":material/check_circle:")
    if top[1].button("↶ Undo my last verdict", use_container_width=True):
        undone = undo_last(name, actor=current_actor())
        st.session_state["last_verdict"] = f"undo of #{undone.clip_id}" if undone else "nothing to undo"
        st.rerun()
    disagreements = [] if blind else review_list(machine)  # blind review: nobody else's verdicts before one's own
    if disagreements:
        with st.expander(f"Review list: {len(disagreements)} clip(s) where annotators disagree"):
            for item in disagreements:
                verdicts = ", ".join(f"{md_literal(who)}: {v}" for who, v in item["verdicts"].items())
                st.markdown(f"- #{item['clip_id']} {md_literal(item['path'].rsplit('/', 1)[-1])} — {verdicts}")
    if not queue:
        st.success("Nothing left to review for this machine. New flags appear here as clips are scored.")
        return
    item = queue[0]
    details = render_clip(item.clip_id, key="triage", blind=blind)
    _verdict_form(item.clip_id, name)
    if blind:
        st.caption("Blind review: the clip's label, file and other verdicts show after your verdict.")
    elif details:
        with st.expander("Verdict history of this clip"):
            render_history(details)


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
