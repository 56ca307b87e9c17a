"""The annotator's name: asked once per browser session, required before any verdict."""

from __future__ import annotations

import streamlit as st

from core.access import checked_name
from core.errors import MachineSoundError
from dashboard.components.text import md_literal

KEY = "annotator_name"  # the same key dashboard.components.auth reads for AUTH=none


def annotator_name() -> str | None:
    """The name given in this browser session, or ``None`` (after showing the form to give it)."""
    name = st.session_state.get(KEY, "").strip()
    if name:
        st.sidebar.caption(f"Annotating as **{md_literal(name)}**")
        return name
    with st.form("annotator_form"):
        st.write("Verdicts record who made them. Please give your name once for this session.")
        given = st.text_input("Your name", key="annotator_input")
        if st.form_submit_button("Start annotating") and given.strip():
            try:
                st.session_state[KEY] = checked_name(given, "your name")
            except MachineSoundError as exc:  # too long to be recorded with a verdict
                st.error(exc.detail)
                return None
            st.rerun()
    return None
