"""Triage: the flagged clips awaiting this pilot's verdict, one at a time, with one-click verdicts; a clip
skipped for now comes back at the end of the queue, and the pilot's own unsure verdicts can be listed and
judged again."""

from __future__ import annotations

import logging

import streamlit as st

from core.errors import MachineSoundError, environment_problem
from core.workflows.triage import (
    QUEUE_LIMIT,
    QUEUE_ORDERS,
    anomaly_types,
    clip_label,
    own_verdicts,
    queue_size,
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
SHOW = ("Flagged clips awaiting my verdict", "My unsure verdicts")
SKIPPED = "skipped_clips"  # this session's clips set aside for now: they come back at the end of the queue


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
    except Exception as exc:  # a bug or a database failure: one line, never a traceback or the SQL behind it
        logging.getLogger(__name__).exception("recording a verdict failed")
        problem = environment_problem(exc) or f"unexpected {type(exc).__name__}"
        st.session_state["verdict_error"] = f"{problem}; try again, and if it persists, report it with the server log"
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


def _notices(top) -> None:
    """What the last click did: a notice, an error, the last verdict saved."""
    if "verdict_notice" in st.session_state:
        st.info(st.session_state.pop("verdict_notice"))
    if "verdict_error" in st.session_state:
        st.error(f"The verdict was not saved: {st.session_state.pop('verdict_error')}")
    if "last_verdict" in st.session_state:
        top.caption(f"Last saved: {st.session_state['last_verdict']}.")
        if st.session_state.pop("toast", False):
            st.toast(f"Saved {st.session_state['last_verdict']}", icon=":material/check_circle:")


def _review_list(machine: str, blind: bool) -> None:
    disagreements = [] if blind else review_list(machine)  # blind review: nobody else's verdicts before one's own
    if disagreements:
        with st.expander(f"Review list: {len(disagreements)} clip(s) where annotators disagree"):
            for item in disagreements:
                verdicts = ", ".join(f"{md_literal(who)}: {v}" for who, v in item["verdicts"].items())
                st.markdown(f"- #{item['clip_id']} {md_literal(item['path'].rsplit('/', 1)[-1])} — {verdicts}")
            st.caption("Engineers settle them on the Review page.")


def _skip(clip_id: int) -> None:
    st.session_state.setdefault(SKIPPED, []).append(clip_id)


def _judge(clip_id: int, name: str, blind: bool, *, skippable: bool) -> None:
    """The clip, the verdict form and (in the queue) a button to skip it for now."""
    details = render_clip(clip_id, key="triage", blind=blind)
    _verdict_form(clip_id, name)
    if skippable:
        st.button("Skip for now", key=f"skip_{clip_id}", on_click=_skip, args=(clip_id,),
                  help="Set this clip aside: it comes back at the end of your queue")  # fmt: skip
    if blind:
        st.caption("Blind review: the clip's label, file and other verdicts show after your verdict.")
    elif details:
        with st.expander("Verdict history of this clip"):
            render_history(details)


def _queue(machine: str, name: str, blind: bool) -> None:
    order_label = st.sidebar.radio("Order", list(QUEUE_ORDERS), key="queue_order")
    queue = triage_queue(machine, QUEUE_ORDERS[order_label], annotator=name)
    skipped = st.session_state.get(SKIPPED, [])
    queue.sort(key=lambda item: skipped.index(item.clip_id) + 1 if item.clip_id in skipped else 0)  # stable
    top = st.columns([3, 1])
    waiting_all = queue_size(machine, annotator=name) if len(queue) >= QUEUE_LIMIT else len(queue)
    top[0].markdown(f"**{waiting_all}** flagged clip(s) of **{md_literal(machine)}** await a verdict.")
    _notices(top[0])
    if top[1].button("↶ Undo my last verdict", use_container_width=True):
        undone = undo_last(name, actor=current_actor())
        st.session_state["last_verdict"] = f"undo of #{undone.clip_id}" if undone else "nothing to undo"
        st.rerun()
    _review_list(machine, blind)
    if not queue:
        st.success("Nothing left to review for this machine. New flags appear here as clips are scored.")
        return
    waiting = sum(item.clip_id in skipped for item in queue)
    if waiting:
        st.caption(f"{waiting} clip(s) you skipped come back at the end of the queue.")
    _judge(queue[0].clip_id, name, blind, skippable=len(queue) > 1)


def _own_unsure(machine: str, name: str, blind: bool) -> None:
    """The pilot's own unsure verdicts on this machine, to hear again and decide (everyone's are in the review
    queue for engineers)."""
    mine = own_verdicts(machine, name)
    _notices(st)
    if not mine:
        st.success(f"No unsure verdict of yours stands on {md_literal(machine)}.")
        return
    st.markdown(f"**{len(mine)}** clip(s) of **{md_literal(machine)}** you judged unsure. "
                "A new verdict replaces yours.")  # fmt: skip
    labels = {item.clip_id: f"#{item.clip_id} · {item.at:%Y-%m-%d %H:%M}" + (f" — {item.note}" if item.note else "")
              for item in mine}  # fmt: skip
    clip_id = st.selectbox("Clip", list(labels), format_func=labels.get, key="unsure_clip")
    _judge(clip_id, name, blind, skippable=False)


def render() -> None:
    st.title("Triage queue")
    name = _annotator()
    if name is None:
        return
    blind = review_is_blind(current_actor())
    machine = machine_picker(require_model=True)
    if machine is None:
        return
    show = st.sidebar.radio("Show", SHOW, key="triage_show")
    if show == SHOW[1]:
        _own_unsure(machine, name, blind)
    else:
        _queue(machine, name, blind)


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
