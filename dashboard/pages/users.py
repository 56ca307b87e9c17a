"""Users: accounts and their roles (AUTH=local passwords, or OIDC users by e-mail), for admins."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import Action, Role
from core.errors import MachineSoundError
from core.workflows.users import add_user, disable_user, list_users, set_role
from dashboard.components.auth import current_actor
from dashboard.components.text import md_literal


def _add(actor) -> None:
    with st.form("add_user", clear_on_submit=True):
        st.subheader("Add a user")
        left, right = st.columns(2)
        name = left.text_input("Name")
        role = right.selectbox("Role", [r.value for r in Role])
        email = left.text_input("E-mail (OpenID Connect users)")
        password = right.text_input("Password (local accounts, 8+ characters)", type="password")
        if st.form_submit_button("Add user", type="primary"):
            try:
                add_user(name, role, password or None, email=email or None, actor=actor)
            except MachineSoundError as exc:
                st.error(md_literal(exc.detail))
            else:
                st.success(f"Added {md_literal(name.strip())} as {role}.")


def _change(actor, names: list[str]) -> None:
    st.subheader("Change a user")
    left, middle, right = st.columns([2, 1, 1], vertical_alignment="bottom")
    name = left.selectbox("User", names, key="user_to_change")
    role = middle.selectbox("New role", [r.value for r in Role], key="user_new_role")
    try:
        if middle.button("Set role"):
            set_role(name, role, actor=actor)
            st.rerun()
        if right.button("Disable", help="the user can no longer sign in; their records stay"):
            disable_user(name, actor=actor)
            st.rerun()
    except MachineSoundError as exc:
        st.error(md_literal(exc.detail))


def render() -> None:
    st.title("Users")
    actor = current_actor()
    if not actor.may(Action.MANAGE_USERS):
        st.warning("Managing users is for admins.")
        return
    users = list_users()
    st.dataframe(pd.DataFrame(users, columns=["name", "role", "active"]), hide_index=True)
    _add(actor)
    if users:
        _change(actor, [u["name"] for u in users])


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
