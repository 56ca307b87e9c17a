"""Triage: the flagged clips awaiting this pilot's verdict, one at a time, judged with the keyboard alone (A
confirm abnormal, N reject, U unsure, Z undo my last verdict, P play the most anomalous second, S skip for now: the
clip comes back at the end of the queue); the pilot's own unsure verdicts can be listed and judged again.

Where am I: a progress line, the machines that still have work when the queue is empty, and a shareable
address: the machine and the clip on screen are the page's query parameters (``?machine=fan/id_00&clip=12``),
and opening such a link shows that clip first."""

from __future__ import annotations

import logging

import streamlit as st

from core.errors import MachineSoundError, environment_problem
from core.workflows.explore import clip_details
from core.workflows.triage import (
    QUEUE_LIMIT,
    QUEUE_ORDERS,
    anomaly_types,
    clip_label,
    linked_clip_id,
    machines_with_work,
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
from dashboard.components.clip_view import (
    load_view,
    prefetch,
    render_details,
    render_history,
    render_player,
    render_spectrogram,
)
from dashboard.components.format import count, when
from dashboard.components.pickers import machine_picker
from dashboard.components.text import md_literal

NEW_TYPE = "+ new type…"
NO_TYPE = "— not specified —"
SHOW = ("Flagged clips awaiting my verdict", "My unsure verdicts")
SKIPPED = "skipped_clips"  # this session's clips set aside for now: they come back at the end of the queue
JUDGED = "judged_this_session"  # the clips this session judged, in order (an undo takes its clip off)
PINNED = "triage_pinned_clip"  # a clip to show first: opened from a link, or given back by an undo
LINK_SEEN = "triage_link_seen"  # the (machine, clip) query parameters last read or written
LINK_NOTICE = "triage_link_notice"  # why a link's clip is not shown, said under the buttons (they keep their place)
PICKER = "machine_picker"  # the sidebar's machine widget (dashboard.components.pickers)
VERDICT_KEYS = {"abnormal": "A", "normal": "N", "unsure": "U"}
UNDO_KEY, PLAY_KEY, SKIP_KEY = "Z", "P", "S"
SPECTROGRAM_HEIGHT = 250  # px: the player, the verdict buttons and this spectrogram (in tight margins: a picture
# 186 px high, where 200 px in the usual margins left it 88) fit a 1280x720 screen; the title row holds the progress
# line and Undo to make the room; with a clip header on two lines (a long machine name) the picture still shows whole
HEAD = [2.5, 2.5, 1.6]  # the title row: the page's title (on one line: no anchor icon to wrap), the progress line, Undo


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
    st.session_state.setdefault(JUDGED, []).append(clip_id)
    if st.session_state.get(PINNED) == clip_id:
        del st.session_state[PINNED]
    found = clip_label(clip_id)
    others = {who: v.verdict for who, v in found.verdicts.items() if who != name.strip()}
    if others:  # someone judged it meanwhile: both verdicts are kept, nobody's is overwritten
        _disagreements.clear()  # it may be disputed now
        said = ", ".join(f"{md_literal(who)} said {v}" for who, v in others.items())
        st.session_state["verdict_notice"] = f"#{clip_id} was also judged by others ({said}); every verdict is kept" + (
            ", and engineers settle the disagreement on the Review page." if found.disputed else "."
        )


def _verdict_form(clip_id: int, name: str, *, skippable: bool | None, waiting: int, aside: str | None) -> None:
    """The verdict buttons (with their keys: A, N, U), skip (S; disabled when ``skippable`` is false, absent when
    None), what the last click did close under them (see :func:`_notices`; ``waiting``: clips skipped; ``aside``: a
    line about the clip), then the anomaly type and the note."""
    choices = (("Confirm abnormal", "abnormal", "primary"), ("Reject (normal)", "normal", "secondary"),
               ("Unsure", "unsure", "secondary"))  # fmt: skip
    with st.container(gap="xxsmall"):  # the status line costs a caption's height, no more: the spectrogram fits
        buttons = st.columns(4)
        for column, (label, verdict, kind_of_button) in zip(buttons, choices, strict=False):
            column.button(label, key=f"{verdict}_{clip_id}", type=kind_of_button, use_container_width=True,
                          shortcut=VERDICT_KEYS[verdict], on_click=_record, args=(clip_id, name, verdict))  # fmt: skip
        if skippable is not None:  # None: no skipping (the unsure list); False: the queue's last clip, disabled
            last = "Nothing else waits in your queue: this is its last clip"
            buttons[3].button("Skip for now", key=f"skip_{clip_id}", on_click=_skip, args=(clip_id,),
                              use_container_width=True, shortcut=SKIP_KEY, disabled=not skippable,
                              help=last if not skippable else "Set this clip aside: it comes back at the end of your "
                              "queue")  # fmt: skip
        _notices(waiting=waiting, aside=aside)
        left, right = st.columns(2)
    kind = left.selectbox("Anomaly type (for Confirm)", [NO_TYPE, *anomaly_types(), NEW_TYPE], key=f"type_{clip_id}")
    if kind == NEW_TYPE:
        left.text_input("New anomaly type", key=f"newtype_{clip_id}")
    right.text_input("Note (optional)", key=f"note_{clip_id}", help="Typing here never triggers a shortcut")


def _annotator() -> str | None:
    """Who judges: the signed-in user; with sign-in off, a name given once per session."""
    actor = current_actor()
    return annotator_name() if actor.operator else actor.name


def _notices(*, waiting: int = 0, aside: str | None = None) -> None:
    """What the last click did, drawn under the verdict buttons so that they never move from one clip to the
    next: a notice or an error when there is one, then always one line, from the first clip on: the last verdict
    saved and, with ``waiting`` clips skipped, that they come back; then ``aside``, a line about the clip."""
    if LINK_NOTICE in st.session_state:
        st.warning(st.session_state.pop(LINK_NOTICE))
    if "verdict_notice" in st.session_state:
        st.info(st.session_state.pop("verdict_notice"))
    if "verdict_error" in st.session_state:
        st.error(f"The verdict was not saved: {st.session_state.pop('verdict_error')}")
    saved, skipped = st.columns(2)
    last = st.session_state.get("last_verdict")
    saved.caption(f"Last saved: {last}." if last else "Last saved: nothing yet this session.")
    if waiting:
        skipped.caption(f"Skipped for now: {count(waiting, 'clip')}, back at the end of the queue.")
    if aside:
        st.caption(aside)


@st.cache_data(ttl=60, show_spinner=False)
def _disagreements(machine: str) -> list[dict]:
    """The review list of ``machine``, kept a minute at most: it reads every clip's verdicts (a large share of a
    verdict's re-run on a large machine); a verdict that meets another annotator's, or an undo, forgets it at once."""
    return review_list(machine)


def _review_list(machine: str, blind: bool) -> None:
    disagreements = [] if blind else _disagreements(machine)  # blind review: nobody else's verdicts before one's own
    if disagreements:
        with st.expander(f"Review list: {count(len(disagreements), 'clip')} where annotators disagree"):
            for item in disagreements:
                verdicts = ", ".join(f"{md_literal(who)}: {v}" for who, v in item["verdicts"].items())
                st.markdown(f"- #{item['clip_id']} {md_literal(item['path'].rsplit('/', 1)[-1])} — {verdicts}")
            st.caption("Engineers settle them on the Review page.")


def _skip(clip_id: int) -> None:
    st.session_state.setdefault(SKIPPED, []).append(clip_id)
    if st.session_state.get(PINNED) == clip_id:
        del st.session_state[PINNED]


def _undo(name: str) -> None:
    """Button callback: cancel my last verdict; its clip comes back on screen, to judge again."""
    try:
        undone = undo_last(name, actor=current_actor())
    except MachineSoundError as exc:
        st.session_state["verdict_error"] = md_literal(exc.detail)
        return
    st.session_state["last_verdict"] = f"undo of #{undone.clip_id}" if undone else "nothing to undo"
    if undone:
        _disagreements.clear()  # an undo may settle a disagreement
        judged = st.session_state.get(JUDGED, [])
        if undone.clip_id in judged:
            del judged[len(judged) - 1 - judged[::-1].index(undone.clip_id)]  # its latest verdict here
        st.session_state[PINNED] = undone.clip_id


def _judge(clip_id: int, name: str, blind: bool, *, skippable: bool | None, waiting: int = 0,
           aside: str | None = None) -> None:  # fmt: skip
    """The clip: its facts, the player and the verdict buttons, what the last click did (``waiting``: clips
    skipped; ``aside``: a line about the clip), one spectrogram (all on a 1280x720 screen), then the details
    below; in the queue, a button to skip it for now."""
    details, views = load_view(clip_id, blind=blind)
    if details is None:
        _notices(waiting=waiting, aside=aside)
        return
    if views is not None:
        render_player(details, views, key="triage", shortcut=PLAY_KEY)
    _verdict_form(clip_id, name, skippable=skippable, waiting=waiting, aside=aside)
    if views is not None:
        render_spectrogram(details, views, key="triage", height=SPECTROGRAM_HEIGHT, tight=True)
        render_details(details, views, key="triage")
    if blind:
        st.caption("Blind review: no label, file name or other annotator's verdict is shown; others' verdicts are "
                   "said once you have given yours.")  # fmt: skip
    elif details.history:
        with st.expander("Verdict history of this clip"):
            render_history(details)


def _pinned(machine: str, queue) -> int | None:
    """The clip to show first (from a link, or given back by an undo) when it is a clip of ``machine``."""
    clip_id = st.session_state.get(PINNED)
    if clip_id is None:
        return None
    details = clip_details(clip_id)
    if details is None or details.machine != machine:
        del st.session_state[PINNED]
        if details is None:
            st.session_state[LINK_NOTICE] = f"Clip #{clip_id} is not in the database; here is your queue."
        return None
    return clip_id


def _outside_queue(clip_id: int, queue) -> str | None:
    """A line for a clip shown first that is not in the pilot's queue (drawn under the buttons: they keep their
    place)."""
    if clip_id in {item.clip_id for item in queue}:
        return None
    return f"Clip #{clip_id} is not awaiting your verdict (judged already, or no longer flagged); a verdict adds yours."


def _nothing_left(machine: str, name: str) -> None:
    """An empty queue points to the machines that still have work."""
    st.success("Nothing left to review for this machine. New flags appear here as clips are scored.")
    others = [(key, n) for key, n in machines_with_work(name) if key != machine]
    if not others:
        st.caption("No other machine has clips awaiting your verdict.")
        return
    st.markdown("Machines that still have clips awaiting your verdict:")
    columns = st.columns(min(4, len(others)))
    for k, (key, n) in enumerate(others):
        columns[k % len(columns)].button(f"{md_literal(key)}: {n} left", key=f"go_{key}", on_click=_go_to,
                                         args=(key,), use_container_width=True)  # fmt: skip


def _go_to(machine: str) -> None:
    st.session_state["selected_machine"] = machine
    st.session_state.pop(PICKER, None)  # the sidebar's picker is drawn again on that machine


def _follow_link() -> None:
    """A link's query parameters (``machine``, ``clip``), read once: its machine chosen, its clip shown first."""
    link = (st.query_params.get("machine"), st.query_params.get("clip"))
    if link == st.session_state.get(LINK_SEEN) or link == (None, None):
        return
    st.session_state[LINK_SEEN] = link
    machine, clip = link
    clip_id = linked_clip_id(clip)
    if clip is not None and clip_id is None:
        said = f"The link's clip “{md_literal(clip)}” is not a clip number; here is your queue."
        st.session_state[LINK_NOTICE] = said
    details = clip_details(clip_id) if clip_id is not None else None
    machine = details.machine if details else machine  # the clip's own machine, whatever the link says
    if machine:
        _go_to(machine)
    if clip_id is not None:
        st.session_state[PINNED] = clip_id


def _show_link(machine: str, clip_id: int | None) -> None:
    """Put the machine and the clip on screen in the address bar, so that it can be shared."""
    wanted = {"machine": machine} | ({"clip": str(clip_id)} if clip_id is not None else {})
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)
    st.session_state[LINK_SEEN] = (machine, wanted.get("clip"))


def _queue(machine: str, name: str, blind: bool, head) -> None:
    """The queue's clip on screen; ``head``: the title row's two slots, for the progress line and Undo."""
    order_label = st.sidebar.radio("Order", list(QUEUE_ORDERS), key="queue_order")
    queue = triage_queue(machine, QUEUE_ORDERS[order_label], annotator=name)
    skipped = st.session_state.get(SKIPPED, [])
    queue.sort(key=lambda item: skipped.index(item.clip_id) + 1 if item.clip_id in skipped else 0)  # stable
    judged = len(st.session_state.get(JUDGED, []))
    left = queue_size(machine, annotator=name) if len(queue) >= QUEUE_LIMIT else len(queue)  # the queue is a page
    head[0].markdown(f"{judged} judged this session; {left} left for {md_literal(machine)}")
    head[1].button("↶ Undo my last verdict", key="undo", shortcut=UNDO_KEY, use_container_width=True,
                  on_click=_undo, args=(name,))  # fmt: skip
    current = _pinned(machine, queue)
    if current is None and not queue:
        _show_link(machine, None)
        _notices()
        _nothing_left(machine, name)
        _review_list(machine, blind)
        return
    current = queue[0].clip_id if current is None else current
    _show_link(machine, current)
    following = next((item for item in queue if item.clip_id != current), None)
    waiting = sum(item.clip_id in skipped for item in queue)
    _judge(current, name, blind, skippable=following is not None, waiting=waiting,
           aside=_outside_queue(current, queue))  # fmt: skip
    _review_list(machine, blind)  # under the clip: the verdict buttons stay where they were
    if following is not None:
        prefetch(following.path)  # its player is ready the moment this verdict is given


def _own_unsure(machine: str, name: str, blind: bool) -> None:
    """The pilot's own unsure verdicts on this machine, to hear again and decide (everyone's are in the review
    queue for engineers)."""
    mine = own_verdicts(machine, name)
    if not mine:
        _show_link(machine, None)
        _notices()
        st.success(f"No unsure verdict of yours stands on {md_literal(machine)}.")
        return
    st.markdown(f"**{count(len(mine), 'clip')}** of **{md_literal(machine)}** you judged unsure. "
                "A new verdict replaces yours.")  # fmt: skip
    labels = {item.clip_id: f"#{item.clip_id} · {item.at:%Y-%m-%d %H:%M}" + (f" — {item.note}" if item.note else "")
              for item in mine}  # fmt: skip
    clip_id = st.selectbox("Clip", list(labels), format_func=labels.get, key="unsure_clip")
    _show_link(machine, clip_id)  # the address names the clip on screen, as in the queue
    own = next(item for item in mine if item.clip_id == clip_id)
    said = f"You judged #{clip_id} unsure on {when(own.at)}" + (f": “{md_literal(own.note)}”" if own.note else "")
    _judge(clip_id, name, blind, skippable=None, aside=f"{said}.")


def render() -> None:
    head = st.columns(HEAD, vertical_alignment="center")  # one row: the spectrogram below gets its height
    head[0].title("Triage queue", anchor=False)
    name = _annotator()
    if name is None:
        return
    blind = review_is_blind(current_actor(), name)  # AUTH=none: blind when the verdict counts as an annotator's
    _follow_link()
    machine = machine_picker(require_model=True)
    if machine is None:
        return
    show = st.sidebar.radio("Show", SHOW, key="triage_show")
    if show == SHOW[1]:
        _own_unsure(machine, name, blind)
    else:
        _queue(machine, name, blind, head[1:])


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
