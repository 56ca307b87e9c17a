"""Users: accounts and their roles (AUTH=local passwords, or OIDC users by e-mail), for admins."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access import Action, Role
from core.errors import MachineSoundError
from core.workflows.users import add_user, disable_user, list_users, set_role
from dashboard.components.annotator import action_button, unnamed
from dashboard.components.auth import current_actor
from dashboard.components.text import md_literal

ADD_KEYS = {field: f"add_user_{field}" for field in ("name", "role", "email", "password")}  # the form's widgets
ADDED = "add_user_outcome"  # the last add's outcome, shown once under the form


def _add_submitted(actor) -> None:
    """Add the user the form holds (a callback: it runs before the page is drawn again, so the table and "Change
    a user" already show the new user); returns nothing.  A success empties the form; a refusal keeps what was
    typed, so fixing the one field named is enough."""
    typed = {field: st.session_state.get(key) for field, key in ADD_KEYS.items()}
    name = typed["name"] or ""
    try:
        add_user(name, typed["role"], typed["password"] or None, email=typed["email"] or None, actor=actor)
    except MachineSoundError as exc:
        st.session_state[ADDED] = ("error", md_literal(exc.detail))
        return
    st.session_state[ADDED] = ("success", f"Added {md_literal(name.strip())} as {typed['role']}.")
    for field in ("name", "email", "password"):  # set, not deleted: a deleted key let the browser keep its text
        st.session_state[ADD_KEYS[field]] = ""


def _add(actor, missing: str | None) -> None:
    with st.form("add_user"):
        st.subheader("Add a user")
        left, right = st.columns(2)
        left.text_input("Name", key=ADD_KEYS["name"])
        right.selectbox("Role", [r.value for r in Role], key=ADD_KEYS["role"])
        left.text_input("E-mail (OpenID Connect users)", key=ADD_KEYS["email"])
        right.text_input("Password (local accounts, 8+ characters)", type="password", key=ADD_KEYS["password"])
        action_button("Add user", missing, form=True, type="primary", on_click=_add_submitted, args=(actor,))
        if ADDED in st.session_state:
            kind, text = st.session_state.pop(ADDED)
            (st.success if kind == "success" else st.error)(text)


def _change(actor, names: list[str], missing: str | None) -> None:
    st.subheader("Change a user")
    left, middle, right = st.columns([2, 1, 1], vertical_alignment="bottom")
    name = left.selectbox("User", names, key="user_to_change")
    role = middle.selectbox("New role", [r.value for r in Role], key="user_new_role")
    try:
        if middle.button("Set role", disabled=bool(missing), help=missing):
            set_role(name, role, actor=actor)
            st.rerun()
        if right.button("Disable", disabled=bool(missing),
                        help=missing or "the user can no longer sign in; their records stay"):  # fmt: skip
            disable_user(name, actor=actor)
            st.rerun()
    except MachineSoundError as exc:
        st.error(md_literal(exc.detail))
    if missing:
        st.caption(missing)


def render() -> None:
    st.title("Users")
    actor = current_actor()
    if not actor.may(Action.MANAGE_USERS):
        st.warning("Managing users is for admins.")
        return
    users = list_users()
    st.dataframe(pd.DataFrame(users, columns=["name", "role", "active"]), hide_index=True)
    missing = unnamed(actor)  # with sign-in off, a name first: every change is audited with who made it
    _add(actor, missing)
    if users:
        _change(actor, [u["name"] for u in users], missing)


if __name__ == "__main__":  # run by st.navigation as a page script
    render()
