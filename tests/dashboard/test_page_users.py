"""dashboard/pages/users.py through AppTest (``AUTH=none``: the local user is an admin): adding a user shows them
at once, and a refused add keeps what was typed."""

from __future__ import annotations

from core.workflows.audit import audit_events
from core.workflows.users import add_user, list_users
from dashboard.components.annotator import UNNAMED
from dashboard.components.text import md_literal
from tests.conftest import no_exception

PASSWORD = "a long enough password"
NAME = "carol"  # given in the sidebar: with sign-in off, what a page saves needs a name


def _field(app, label: str):
    return next(w for w in [*app.text_input, *app.selectbox] if w.label.startswith(label))


def _fill(app, name: str, password: str, role: str = "annotator"):
    _field(app, "Name").input(name)
    _field(app, "Role").set_value(role)
    _field(app, "Password").input(password)
    next(b for b in app.button if b.label == "Add user").click().run()
    no_exception(app)
    return app


def _listed(app) -> list[str]:
    return list(app.dataframe[0].value["name"])


def test_an_added_user_is_listed_and_can_be_changed_at_once(open_page):
    """The table was drawn before the form added the user: it said nobody, and "Change a user" was missing,
    until a reload."""
    app = open_page("users", name=NAME)
    assert _listed(app) == [] and "Change a user" not in [s.value for s in app.subheader]
    _fill(app, "ana", PASSWORD)
    assert [s.value for s in app.success] == ["Added ana as annotator."]
    assert _listed(app) == ["ana"]
    assert "Change a user" in [s.value for s in app.subheader]
    assert app.selectbox(key="user_to_change").options == ["ana"]
    assert _field(app, "Name").value == "" and _field(app, "Password").value == ""
    app.run()  # the outcome is said once
    assert not app.success and _listed(app) == ["ana"]


def test_a_refused_add_keeps_what_was_typed_so_fixing_the_password_is_enough(open_page):
    """A refusal emptied the form: fixing the password alone then failed on an empty name."""
    app = open_page("users", name=NAME)
    _fill(app, "ana", "short", role="engineer")
    assert [e.value for e in app.error] == [md_literal("password must be 8 to 1024 characters long, got 5 characters")]
    assert _field(app, "Name").value == "ana"
    assert _field(app, "Role").value == "engineer"
    assert _listed(app) == [] and list_users() == []
    _field(app, "Password").input(PASSWORD)
    next(b for b in app.button if b.label == "Add user").click().run()
    no_exception(app)
    assert not app.error and [s.value for s in app.success] == ["Added ana as engineer."]
    assert [(u["name"], u["role"]) for u in list_users()] == [("ana", "engineer")]


def test_with_sign_in_off_user_changes_wait_for_a_name_then_record_it(open_page):
    """Users were added, changed and disabled (and audited) as "local user" when no name had been given."""
    add_user("ana", "annotator", PASSWORD)
    app = open_page("users")
    buttons = {b.label: b for b in [*app.button, *app.form_submit_button] if b.label in ("Add user", "Set role",
                                                                                         "Disable")}  # fmt: skip
    assert sorted(buttons) == ["Add user", "Disable", "Set role"]
    assert all(b.disabled and b.help == UNNAMED for b in buttons.values())
    assert [c.value for c in app.caption].count(UNNAMED) == 2  # under the form, and under Set role and Disable
    app.sidebar.text_input(key="annotator_input").input("Ann").run()
    assert UNNAMED not in [c.value for c in app.caption]
    _fill(app, "bob", PASSWORD)
    app.selectbox(key="user_new_role").set_value("engineer")
    next(b for b in app.button if b.label == "Set role").click().run()
    no_exception(app)
    assert [(e["user"], e["action"], e["target"]) for e in audit_events(2)] == [("Ann", "set role", "ana"),
                                                                                ("Ann", "add user", "bob")]  # fmt: skip
