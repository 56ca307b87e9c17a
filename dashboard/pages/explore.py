"""Explore: any clip of a machine, beside a typical normal clip of the same machine."""

from __future__ import annotations

import streamlit as st

from core.workflows.catalogue import clip_choices, machine_keys
from core.workflows.explore import clip_details, typical_normal_clip
from core.workflows.triage import linked_clip_id, review_is_blind
from dashboard.components.auth import current_actor
from dashboard.components.clip_view import render_clip, render_history, shared_error_scale
from dashboard.components.pickers import machine_picker
from dashboard.components.text import md_literal

LINK, WANTED = "explore_link", "explore_clip"  # the link last read; the clip it opened
ORDERS = ("by id", "highest score")


def _open_linked_clip() -> str | None:
    """A link ``explore?machine=TYPE/ID&clip=ID`` (the Compare page's) opens that machine and clip, once per link;
    a clip of another machine opens on its own machine.  Returns what to say about the link (Markdown), if any."""
    link = (st.query_params.get("machine"), st.query_params.get("clip"))
    if link == (None, None) or st.session_state.get(LINK) == link:
        return None
    st.session_state[LINK] = link
    clip_id = linked_clip_id(link[1])
    details = clip_details(clip_id) if clip_id is not None else None
    machine = details.machine if details else link[0]  # the clip's own machine, whatever the link says
    if machine:
        st.session_state["selected_machine"] = machine
        st.session_state.pop("machine_picker", None)  # the sidebar's choice follows the link
    if details is not None:
        st.session_state[WANTED] = details.clip_id
    else:  # the machine's first clip, not one an earlier link opened
        st.session_state.pop(WANTED, None)
    return _link_notice(link, details)


def _link_notice(link: tuple[str | None, str | None], details) -> str | None:
    """A clip the link names on another machine, or what it names that is not in the database (Markdown, the
    link's words shown as typed; the page says what it shows instead), else ``None``."""
    machine, clip = link
    if details is not None:
        if not machine or details.machine == machine:
            return None
        return f"Clip #{details.clip_id} is a clip of {md_literal(details.machine)}, not of {md_literal(machine)}"
    missed = []
    if clip is not None:
        missed.append(f"clip {md_literal(clip)} is " + ("no clip id" if linked_clip_id(clip) is None else
                                                         "not in the database"))  # fmt: skip
    if machine and machine not in machine_keys():
        missed.append(f"machine {md_literal(machine)} is not in the database")
    return "The link's " + ", and its ".join(missed) if missed else None


def _show_link(machine: str, clip_id: int) -> None:
    """Put the machine and the clip on screen in the address bar, so that it can be shared."""
    wanted = {"machine": machine, "clip": str(clip_id)}
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)
    st.session_state[LINK] = (machine, wanted["clip"])


def render() -> None:
    st.title("Explore a clip")
    notice, said = st.empty(), _open_linked_clip()  # said once the clip shown is known
    machine = machine_picker()
    if machine is None:
        return
    blind = review_is_blind(current_actor())  # an annotator explores without labels, paths or verdicts too
    pick, order = st.columns([4, 1])
    by_score = order.radio("Order", ORDERS, key="explore_order", horizontal=True,
                           help="The clips by id, or the active model's highest score first") == ORDERS[1]  # fmt: skip
    options = clip_choices(machine, blind=blind, by_score=by_score)
    wanted = st.session_state.get(WANTED)
    ids = list(options)
    clip_id = pick.selectbox("Clip", ids, index=ids.index(wanted) if wanted in ids else 0, format_func=options.get,
                             help="Type to search what the options say, e.g. an id or \"flagged\"")  # fmt: skip
    st.session_state[WANTED] = clip_id  # kept when the order changes the options
    if said:  # the link's clip on its own machine, or another clip instead of what the link names
        instead = f"here is clip #{clip_id} of {md_literal(machine)} instead"
        shown = "here it is on its own machine" if wanted == clip_id else instead
        notice.warning(f"{said}; {shown}.")
    _show_link(machine, clip_id)
    typical = typical_normal_clip(clip_id)
    here, there = clip_details(clip_id), clip_details(typical) if typical is not None else None  # read once each
    # both clips' error charts on one scale: scaled alone, a normal clip's small errors fill the chart too
    scale = shared_error_scale(here, there)
    left, right = st.columns(2)
    with left:
        st.subheader("This clip")
        details = render_clip(clip_id, key="explore", compact=True, blind=blind, scale=scale, details=here)
        if details and not blind:
            render_history(details, final=True)  # a settled clip with its final verdict
    with right:
        st.subheader("A typical normal clip")
        if typical is None:
            st.info("No scored normal training clip of this machine to compare with yet.")
        else:
            render_clip(typical, key="typical", compact=True, blind=blind, scale=scale, details=there)
    if scale:
        st.caption("The two clips' detector error charts share their scales.")


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
