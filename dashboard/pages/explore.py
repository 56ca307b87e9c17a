"""Explore: any clip of a machine, beside a typical normal clip of the same machine."""

from __future__ import annotations

import streamlit as st

from core.workflows.catalogue import clip_choices
from core.workflows.explore import clip_details, typical_normal_clip
from core.workflows.triage import linked_clip_id, review_is_blind
from dashboard.components.auth import current_actor
from dashboard.components.clip_view import render_clip, render_history, shared_error_scale
from dashboard.components.pickers import machine_picker


def _open_linked_clip() -> None:
    """A link ``explore?machine=TYPE/ID&clip=ID`` (the Compare page's) opens that machine and clip, once per link."""
    wanted = (st.query_params.get("machine"), st.query_params.get("clip"))
    if wanted == (None, None) or st.session_state.get("explore_link") == wanted:
        return
    st.session_state["explore_link"] = wanted
    if wanted[0]:
        st.session_state["selected_machine"] = wanted[0]
        st.session_state.pop("machine_picker", None)  # the sidebar's choice follows the link
    if (clip_id := linked_clip_id(wanted[1])) is not None:
        st.session_state["explore_clip"] = clip_id


def render() -> None:
    st.title("Explore a clip")
    _open_linked_clip()
    machine = machine_picker()
    if machine is None:
        return
    blind = review_is_blind(current_actor())  # an annotator explores without labels, paths or verdicts too
    options = clip_choices(machine, blind=blind)
    wanted = st.session_state.get("explore_clip")
    ids = list(options)
    clip_id = st.selectbox("Clip", ids, index=ids.index(wanted) if wanted in ids else 0,
                           format_func=options.get)  # fmt: skip
    typical = typical_normal_clip(clip_id)
    here, there = clip_details(clip_id), clip_details(typical) if typical is not None else None  # read once each
    # both clips' error charts on one scale: scaled alone, a normal clip's small errors fill the chart too
    scale = shared_error_scale(here, there)
    left, right = st.columns(2)
    with left:
        st.subheader("This clip")
        details = render_clip(clip_id, key="explore", compact=True, blind=blind, scale=scale, details=here)
        if details and not blind:
            render_history(details)
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
