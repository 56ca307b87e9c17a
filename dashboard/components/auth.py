"""Who is signed in: the sign-in wall, sign-out, and the banner when sign-in is off.

``AUTH`` (the settings module) decides: ``local`` asks for a username and password (accounts in the
product's database, checked by ``core.workflows.users``), ``oidc`` signs in through the OpenID Connect
provider configured in ``.streamlit/secrets.toml`` (Streamlit's ``st.login``), ``none`` (the default)
has one local user with every right, on a server bound to 127.0.0.1 only.  Nothing of the plant is
drawn before :func:`sign_in` returns an actor.
"""

from __future__ import annotations

import streamlit as st

from core.access import Actor, Role
from core.errors import SignInError
from core.settings import settings
from core.workflows.users import actor_for_claims, authenticate, list_users
from dashboard.components.annotator import KEY as NAME_KEY  # AUTH=none: the name given in the sidebar
from dashboard.components.annotator import name_field
from dashboard.components.text import md_literal

KEY = "signed_in_actor"
LOCAL_USER = "local user"
ROLE_NOT_KNOWN = "not known"  # a verdict whose name had no account (it counts as an annotator's)
ROLE_SIGN_IN_OFF = "not checked, sign-in off"  # what sign-in off records: nobody's role was checked


def current_actor() -> Actor:
    """The actor :func:`sign_in` let in on this run (pages run after it)."""
    return st.session_state[KEY]


def role_shown(role: str | None) -> str:
    """A recorded role (a verdict's, a final verdict's, an audit event's) as every page shows it.

    With sign-in off (``AUTH=none``) nobody's role is checked: the dashboard's person acts with every right, so their
    final verdicts and audit events record ``admin``, and their verdicts record no role (or the role of an account
    of the name typed); while sign-in is off, ``admin`` and no role are both shown as :data:`ROLE_SIGN_IN_OFF`,
    the one truthful word for either.  Otherwise a role is shown as recorded, and none as :data:`ROLE_NOT_KNOWN`."""
    if str(settings().auth) == "none" and role in (None, Role.ADMIN.value):
        return ROLE_SIGN_IN_OFF
    return role or ROLE_NOT_KNOWN


def sign_in() -> Actor | None:
    """The signed-in actor, or None after drawing the sign-in wall (the caller then stops)."""
    mode = str(settings().auth)
    actor = {"none": _local_user, "oidc": _oidc_user}.get(mode, _password_user)()
    if actor is not None:
        st.session_state[KEY] = actor
        _sidebar(actor, mode)
    return actor


def _local_user() -> Actor:
    st.sidebar.caption(":material/lock_open: **Sign-in is off** (`AUTH=none`): everyone who reaches this server "
                       "acts with every right, so it listens on 127.0.0.1 only. To serve a team, set `AUTH=local` "
                       "or `AUTH=oidc` (see the README).")  # fmt: skip
    name_field()
    name = st.session_state.get(NAME_KEY, "").strip() or LOCAL_USER
    return Actor(name, Role.ADMIN, operator=True)


def _password_user() -> Actor | None:
    actor = st.session_state.get(KEY)
    if isinstance(actor, Actor):
        return actor
    st.title("Sign in")
    if not list_users():
        st.info("No accounts yet. An operator creates the first one on the server with "
                "`python -m core users add NAME --role admin` (the password is read from standard input).")  # fmt: skip
    with st.form("sign_in_form"):
        name = st.text_input("Username", key="sign_in_name")
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            actor = authenticate(name, password)
        except SignInError as exc:
            st.error(md_literal(exc.detail))
            return None
        st.session_state[KEY] = actor
        st.rerun()
    return None


def _oidc_user() -> Actor | None:
    if not st.user.is_logged_in:
        st.title("Sign in")
        st.write("This workbench signs you in with your organisation's account.")
        st.button("Sign in", type="primary", on_click=st.login)
        return None
    try:
        return actor_for_claims(st.user.to_dict(), settings().auth_role_claim)
    except SignInError as exc:
        st.title("Sign in")
        st.error(md_literal(exc.detail))
        st.button("Sign out", on_click=st.logout)
        return None


def _sidebar(actor: Actor, mode: str) -> None:
    if mode == "none":
        return
    st.sidebar.caption(f"Signed in as **{md_literal(actor.name)}** ({actor.role.value})")
    if st.sidebar.button("Sign out", key="sign_out"):
        st.session_state.pop(KEY, None)
        if mode == "oidc":
            st.logout()
        st.rerun()
