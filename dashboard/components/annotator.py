"""The name a person works under with sign-in off (``AUTH=none``): given once in the sidebar of any page, so that
the verdicts, final verdicts, thresholds, models, exports, ingests and user changes of this browser session all
carry the same name, and none of them is saved without one (:func:`refusal` says why a control waits for it)."""

from __future__ import annotations

import streamlit as st

from core.access import Action, Actor, checked_name, why_not
from core.errors import MachineSoundError
from dashboard.components.text import md_literal

KEY = "annotator_name"  # the session's name, checked (dashboard.components.auth makes the actor of it)
FIELD = "annotator_input"  # the sidebar's "Your name" field
ERROR = "annotator_name_error"  # why the name last typed was refused (the name before it stays)
EDITING = "annotator_name_editing"  # "Change" was clicked: the field is shown until a name is taken
UNNAMED = "Give your name in the sidebar first: what you save here records who saved it."  # :func:`unnamed`


def name_field() -> None:
    """The sidebar's name: **Working as NAME** with a **Change** button once a name is given, else the **Your name**
    field; a name typed there (then Enter) becomes the session's name once :func:`~core.access.checked_name`
    accepts it, and the field makes way for the line, so that the keyboard's focus leaves it (Triage's keys work at
    once); a refused name is said under the field."""
    name = st.session_state.get(KEY, "").strip()
    if name and not st.session_state.get(EDITING):
        line, change = st.sidebar.columns([3, 1.4], vertical_alignment="center")
        line.caption(f"Working as **{md_literal(name)}**")
        change.button("Change", key="annotator_change", on_click=_edit, type="tertiary",  # a link's width: whole
                      help="Give another name for this session")  # fmt: skip
        return
    if FIELD not in st.session_state:  # the field was gone: it opens on the name in use
        st.session_state[FIELD] = name
    st.sidebar.text_input("Your name", key=FIELD, on_change=_take_name,
                          help="Recorded with what you save in this browser session (verdicts, thresholds, models, "
                               "exports, ingests). Sign-in is off, so nobody checks it.")  # fmt: skip
    if ERROR in st.session_state:
        st.sidebar.error(st.session_state[ERROR])


def _edit() -> None:
    st.session_state[EDITING] = True
    st.session_state[FIELD] = st.session_state.get(KEY, "")


def _take_name() -> None:
    """The name typed becomes the session's; an emptied field keeps the name in use (a change given up)."""
    if not (st.session_state.get(FIELD) or "").strip() and st.session_state.get(KEY):
        st.session_state.pop(EDITING, None)
        return
    try:
        st.session_state[KEY] = checked_name(st.session_state.get(FIELD), "your name")
    except MachineSoundError as exc:  # too long to be recorded with a verdict
        st.session_state[ERROR] = exc.detail
        return
    st.session_state.pop(ERROR, None)
    st.session_state.pop(EDITING, None)


def annotator_name() -> str | None:
    """The name given in this browser session, or ``None`` after saying where to give it."""
    name = st.session_state.get(KEY, "").strip()
    if name:
        return name
    st.info("Verdicts record who made them: give **Your name** in the sidebar (then press Enter) to start.")
    return None


def unnamed(actor: Actor) -> str | None:
    """Why ``actor`` may not save a record in their name yet (sign-in off and no name given), or ``None``."""
    if actor.operator and not st.session_state.get(KEY, "").strip():
        return UNNAMED
    return None


def refusal(actor: Actor, *actions: Action) -> str | None:
    """Why ``actor`` may not do ``actions`` from a page now, in words for a disabled control: the first action their
    role does not allow (:func:`core.access.why_not`), else :func:`unnamed`; ``None`` when they may."""
    return next(filter(None, (why_not(actor.role, action) for action in actions)), None) or unnamed(actor)


def action_button(label: str, refused: str | None, *, where=st, form: bool = False, disabled: bool = False,
                  help: str | None = None, **kwargs) -> bool:  # noqa: A002  (Streamlit's own keyword)
    """A button for an action ``refused`` may forbid (:func:`refusal`): disabled while it does, the reason in its
    tooltip and said under it, on the page; ``disabled``/``help`` for the button's other conditions.  ``where``: a
    column or the page; ``form``: a form's submit button.  Whether it was clicked."""
    draw = where.form_submit_button if form else where.button
    clicked = draw(label, disabled=bool(refused) or disabled, help=refused or help, **kwargs)
    if refused:  # said on the page, not only in the disabled button's tooltip
        where.caption(refused)
    return clicked
