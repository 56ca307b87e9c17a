"""Audit: who did what and when (verdicts, undos, thresholds, activations, exports, training, users), for managers."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import Action
from core.workflows.audit import audit_events
from dashboard.components.auth import current_actor, role_shown
from dashboard.components.format import when


def render() -> None:
    st.title("Audit log")
    actor = current_actor()
    if not actor.may(Action.VIEW_AUDIT):
        st.warning("The audit log is for managers and admins.")
        return
    limit = st.number_input("Newest events", min_value=10, max_value=10_000, value=200, step=50)
    events = pd.DataFrame(audit_events(int(limit), actor=actor))
    if events.empty:
        st.info("Nothing recorded yet.")
        return
    events["at"] = [when(pd.Timestamp(at), seconds=True) for at in events["at"]]  # ISO with microseconds is noise
    events["role"] = [role_shown(role) for role in events["role"]]  # as the Review page says it
    st.caption("Newest first. Double-click a detail to read it whole.")
    st.dataframe(events, hide_index=True, column_config={
        "at": st.column_config.TextColumn("at (UTC)"),
        "detail": st.column_config.TextColumn("detail", width="large"),
    })  # fmt: skip


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
