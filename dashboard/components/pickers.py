"""Choosing a machine, kept across pages in the session."""

from __future__ import annotations

import streamlit as st

from core.workflows.catalogue import machine_keys


def machine_picker(
    *, require_model: bool = False, key: str = "machine", no_model_hint: str | None = None
) -> str | None:
    """A machine ``type/id`` chosen in the sidebar (the choice follows the user across pages).  ``no_model_hint``
    replaces the advice shown when no machine has a model yet."""
    options = machine_keys(require_model=require_model)
    if not options:
        st.info(no_model_hint or "No machine has a trained model yet. Train one with `python -m core train`, or "
                "restart the app on an empty database to get the demo plant.")  # fmt: skip
        return None
    current = st.session_state.get("selected_machine")
    index = options.index(current) if current in options else 0
    choice = st.sidebar.selectbox("Machine", options, index=index, key=f"{key}_picker")
    st.session_state["selected_machine"] = choice
    return choice
