"""core.workflows.users: accounts and roles, password sign-in (argon2id, one message for every refusal,
rate limited per name), the CLI's ``--as`` actor and OpenID Connect claims, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import MetaData, func, select

import core.workflows.users as users
from core.access import OPERATOR, Action, Actor, Role, allowed
from core.errors import BadInputError, PermissionDeniedError, Reason, SignInError
from core.workflows.audit import audit_events
from core.workflows.users import (
    FAILED_SIGN_IN_WINDOW,
    MAX_FAILED_SIGN_INS,
    NO_ROLE,
    WRONG_CREDENTIALS,
    actor_for,
    actor_for_claims,
    add_user,
    authenticate,
    disable_user,
    list_users,
    set_role,
)
from db.models import AuditEvent, FailedSignIn, User, utcnow
from db.session import get_engine, session_scope

PASSWORD = "correct horse battery"  # noqa: S105 (a test password)
OTHER = "Tr0ub4dor&3-wrong"  # noqa: S105


def _count(url: str, model) -> int:
    with session_scope(url) as session:
        return session.scalar(select(func.count()).select_from(model))


def _hash_of(url: str, name: str) -> str | None:
    with session_scope(url) as session:
        return session.scalar(select(User.password_hash).where(User.name == name))


def dump(url: str) -> str:
    """Every row of every table of the database, as text (what a backup would hold)."""
    engine = get_engine(url)
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as conn:
        return "\n".join(
            f"{table.name}: {row}" for table in metadata.sorted_tables for row in conn.execute(table.select())
        )


def _refused(call, *args, **kwargs) -> str:
    with pytest.raises(SignInError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


# --- managing users -----------------------------------------------------------------------------------------------


def test_add_set_role_disable_and_list(any_db_url):
    assert list_users(url=any_db_url) == []
    assert add_user("ana", "admin", PASSWORD, url=any_db_url) == {"name": "ana", "role": "admin", "active": True}
    add_user("Bo Li", Role.ENGINEER, PASSWORD, email=" Bo.Li@Example.com ", url=any_db_url)
    add_user("cy", "Annotator", email="cy@example.com", url=any_db_url)  # OpenID Connect only: no password
    assert set_role("Bo Li", "manager", url=any_db_url) == {"name": "Bo Li", "role": "manager", "active": True}
    assert disable_user("cy", url=any_db_url) == {"name": "cy", "role": "annotator", "active": False}
    assert list_users(url=any_db_url) == [
        {"name": "Bo Li", "role": "manager", "active": True},
        {"name": "ana", "role": "admin", "active": True},
        {"name": "cy", "role": "annotator", "active": False},
    ]
    with session_scope(any_db_url) as session:
        stored = {u.name: (u.email, u.password_hash is None) for u in session.scalars(select(User))}
    assert stored == {"ana": (None, False), "Bo Li": ("bo.li@example.com", False), "cy": ("cy@example.com", True)}


def test_user_actions_are_audited_newest_first_with_who_did_them(any_db_url):
    add_user("ana", "admin", PASSWORD, url=any_db_url)
    ana = Actor("ana", Role.ADMIN)
    add_user("bo", "engineer", PASSWORD, email="bo@example.com", actor=ana, url=any_db_url)
    set_role("bo", "manager", actor=ana, url=any_db_url)
    disable_user("bo", actor=ana, url=any_db_url)
    events = audit_events(url=any_db_url)
    assert [(e["user"], e["role"], e["action"], e["target"], e["detail"]) for e in events] == [
        ("ana", "admin", "disable user", "bo", ""),
        ("ana", "admin", "set role", "bo", "engineer -> manager"),
        ("ana", "admin", "add user", "bo", "role engineer, with a password, e-mail bo@example.com"),
        ("operator", "admin", "add user", "ana", "role admin, with a password"),
    ]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda url: add_user("", "admin", PASSWORD, url=url), "name"),
        (lambda url: add_user(" ana", "admin", PASSWORD, url=url), "name"),
        (lambda url: add_user("ana ", "admin", PASSWORD, url=url), "name"),
        (lambda url: add_user("a" * 129, "admin", PASSWORD, url=url), "name"),
        (lambda url: add_user("an\ta", "admin", PASSWORD, url=url), "name"),
        (lambda url: add_user(None, "admin", PASSWORD, url=url), "name"),
        (lambda url: add_user("ana", "boss", PASSWORD, url=url), "role"),
        (lambda url: add_user("ana", "admin", "short", url=url), "password"),
        (lambda url: add_user("ana", "admin", "x" * 1025, url=url), "password"),
        (lambda url: add_user("ana", "admin", PASSWORD, email="not an e-mail", url=url), "email"),
        (lambda url: add_user("ana", "admin", PASSWORD, email="ana\x00@example.com", url=url), "email"),  # no NUL
        (lambda url: add_user("ana", "admin", PASSWORD, email="a" * 310 + "@example.com", url=url), "email"),
        (lambda url: add_user("ana", "admin", url=url), "email"),  # no password: OpenID Connect, by e-mail
        (lambda url: set_role("ana", "root", url=url), "role"),
        (lambda url: set_role("nobody", "admin", url=url), "name"),
        (lambda url: disable_user("nobody", url=url), "name"),
    ],
)
def test_bad_input_is_refused_naming_the_field(any_db_url, call, field):
    with pytest.raises(BadInputError) as caught:
        call(any_db_url)
    assert caught.value.detail.startswith(field), caught.value.detail
    assert "short" not in caught.value.detail and "x" * 20 not in caught.value.detail  # a password is never quoted
    assert _count(any_db_url, User) == 0 and _count(any_db_url, AuditEvent) == 0


def test_a_taken_name_or_email_is_refused_clearly(any_db_url):
    add_user("ana", "engineer", PASSWORD, email="ana@example.com", url=any_db_url)
    with pytest.raises(BadInputError, match="name: a user named 'ana' already exists") as caught:
        add_user("ana", "admin", OTHER, url=any_db_url)
    assert caught.value.reason is Reason.INVALID_PARAMETER
    with pytest.raises(BadInputError, match="email: ana@example.com is another user's e-mail already"):
        add_user("ana2", "admin", OTHER, email="ANA@example.com", url=any_db_url)
    assert list_users(url=any_db_url) == [{"name": "ana", "role": "engineer", "active": True}]
    assert _count(any_db_url, AuditEvent) == 1


def test_an_unknown_user_is_named(any_db_url):
    with pytest.raises(BadInputError, match="name: no user named 'zed'") as caught:
        set_role("zed", "admin", url=any_db_url)
    assert caught.value.reason is Reason.NOT_FOUND


# --- who may manage users -----------------------------------------------------------------------------------------

MANAGING = {
    "add": lambda actor, url: add_user("new", "annotator", PASSWORD, actor=actor, url=url),
    "set role": lambda actor, url: set_role("bo", "manager", actor=actor, url=url),
    "disable": lambda actor, url: disable_user("bo", actor=actor, url=url),
}


@pytest.mark.parametrize("what", list(MANAGING))
@pytest.mark.parametrize("role", list(Role))
def test_only_an_admin_manages_users_and_a_refusal_writes_nothing(any_db_url, role, what):
    add_user("bo", "engineer", PASSWORD, url=any_db_url)
    before = (list_users(url=any_db_url), _count(any_db_url, AuditEvent))
    actor = Actor("someone", role)
    if allowed(role, Action.MANAGE_USERS):
        assert role is Role.ADMIN
        MANAGING[what](actor, any_db_url)
        assert _count(any_db_url, AuditEvent) == before[1] + 1
        assert audit_events(url=any_db_url)[0]["user"] == "someone"
        return
    with pytest.raises(PermissionDeniedError, match=rf"someone may not manage users: .* \(you are {role}\)"):
        MANAGING[what](actor, any_db_url)
    assert (list_users(url=any_db_url), _count(any_db_url, AuditEvent)) == before


def test_no_actor_is_the_operator():
    assert add_user("ana", "annotator", PASSWORD) == {"name": "ana", "role": "annotator", "active": True}
    assert audit_events()[0]["user"] == OPERATOR.name


# --- signing in with a password -----------------------------------------------------------------------------------


def test_authenticate_gives_one_message_for_every_refusal(any_db_url):
    add_user("ana", "engineer", PASSWORD, url=any_db_url)
    add_user("gone", "engineer", PASSWORD, url=any_db_url)
    disable_user("gone", url=any_db_url)
    add_user("sso", "engineer", email="sso@example.com", url=any_db_url)  # no password: OpenID Connect only

    assert authenticate("ana", PASSWORD, url=any_db_url) == Actor("ana", Role.ENGINEER)
    assert authenticate(" ana ", PASSWORD, url=any_db_url) == Actor("ana", Role.ENGINEER)
    messages = {
        _refused(authenticate, "ana", OTHER, url=any_db_url),  # wrong password
        _refused(authenticate, "ana", PASSWORD.upper(), url=any_db_url),
        _refused(authenticate, "nobody", PASSWORD, url=any_db_url),  # unknown name
        _refused(authenticate, "gone", PASSWORD, url=any_db_url),  # disabled
        _refused(authenticate, "sso", "", url=any_db_url),  # no password to check
        _refused(authenticate, "", PASSWORD, url=any_db_url),
        _refused(authenticate, "x" * 500, PASSWORD, url=any_db_url),
    }
    assert messages == {WRONG_CREDENTIALS} == {"wrong username or password"}


def test_a_sign_in_is_audited(any_db_url):
    add_user("ana", "manager", PASSWORD, url=any_db_url)
    authenticate("ana", PASSWORD, url=any_db_url)
    _refused(authenticate, "ana", OTHER, url=any_db_url)
    events = audit_events(url=any_db_url)
    assert [(e["user"], e["role"], e["action"]) for e in events[:2]] == [
        ("ana", "manager", "sign in"),
        ("operator", "admin", "add user"),
    ]


def test_the_sixth_attempt_within_the_window_is_refused_even_with_the_right_password(any_db_url, monkeypatch):
    add_user("ana", "engineer", PASSWORD, url=any_db_url)
    for _ in range(MAX_FAILED_SIGN_INS):
        assert _refused(authenticate, "ana", OTHER, url=any_db_url) == WRONG_CREDENTIALS
    message = _refused(authenticate, "ana", PASSWORD, url=any_db_url)
    assert message == "too many failed sign-ins for this name; try again in 15 minutes"
    assert _count(any_db_url, FailedSignIn) == MAX_FAILED_SIGN_INS  # a refused attempt does not prolong the lock
    assert _refused(authenticate, "bo", OTHER, url=any_db_url) == WRONG_CREDENTIALS  # other names are not locked

    later = utcnow() + timedelta(minutes=10)
    monkeypatch.setattr(users, "utcnow", lambda: later)
    assert _refused(authenticate, "ana", PASSWORD, url=any_db_url).endswith("try again in 5 minutes")
    after_window = utcnow() + FAILED_SIGN_IN_WINDOW + timedelta(seconds=1)
    monkeypatch.setattr(users, "utcnow", lambda: after_window)
    assert authenticate("ana", PASSWORD, url=any_db_url) == Actor("ana", Role.ENGINEER)
    with session_scope(any_db_url) as session:
        assert session.scalars(select(FailedSignIn.name)).all() == ["bo"]  # ana's cleared by the success


def test_a_success_clears_the_count(any_db_url):
    add_user("ana", "engineer", PASSWORD, url=any_db_url)
    for _ in range(2):  # 4 failures, a success, 4 failures, a success: never 5 counted
        for _ in range(MAX_FAILED_SIGN_INS - 1):
            _refused(authenticate, "ana", OTHER, url=any_db_url)
        assert authenticate("ana", PASSWORD, url=any_db_url).name == "ana"
    assert _count(any_db_url, FailedSignIn) == 0


def test_unknown_names_are_rate_limited_too_and_old_failures_are_forgotten(db_url, monkeypatch):
    for _ in range(MAX_FAILED_SIGN_INS):
        _refused(authenticate, "ghost", OTHER, url=db_url)
    assert _refused(authenticate, "ghost", OTHER, url=db_url).startswith("too many failed sign-ins")
    later = utcnow() + FAILED_SIGN_IN_WINDOW + timedelta(minutes=1)
    monkeypatch.setattr(users, "utcnow", lambda: later)
    assert _refused(authenticate, "other", OTHER, url=db_url) == WRONG_CREDENTIALS
    with session_scope(db_url) as session:
        assert session.scalars(select(FailedSignIn.name)).all() == ["other"]  # ghost's expired rows dropped


def test_the_hash_is_argon2id_and_never_holds_the_password(any_db_url):
    add_user("ana", "engineer", PASSWORD, url=any_db_url)
    add_user("bo", "engineer", PASSWORD, url=any_db_url)
    first, second = _hash_of(any_db_url, "ana"), _hash_of(any_db_url, "bo")
    assert first.startswith("$argon2id$") and second.startswith("$argon2id$")
    assert first != second  # salted
    for stored in (first, second):
        assert stored != PASSWORD and PASSWORD not in stored
    authenticate("ana", PASSWORD, url=any_db_url)
    shown = repr(list_users(url=any_db_url)) + repr(audit_events(url=any_db_url))
    shown += repr(authenticate("ana", PASSWORD, url=any_db_url))
    assert "argon2" not in shown and PASSWORD not in shown


def test_no_password_is_in_the_database(any_db_url):
    add_user("ana", "engineer", PASSWORD, url=any_db_url)
    set_role("ana", "manager", url=any_db_url)
    authenticate("ana", PASSWORD, url=any_db_url)
    _refused(authenticate, "ana", OTHER, url=any_db_url)
    everything = dump(any_db_url)
    assert "users: " in everything and "audit_events: " in everything  # the dump holds the rows
    assert PASSWORD not in everything and OTHER not in everything
    assert everything.count("$argon2id$") == 1  # only the users table holds the hash


def test_an_outdated_hash_is_rehashed_on_sign_in(db_url):
    add_user("ana", "engineer", PASSWORD, url=db_url)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with session_scope(db_url) as session:
        session.scalar(select(User).where(User.name == "ana")).password_hash = weak
    authenticate("ana", PASSWORD, url=db_url)
    renewed = _hash_of(db_url, "ana")
    assert renewed != weak and renewed.startswith("$argon2id$")
    assert not PasswordHasher().check_needs_rehash(renewed)
    assert authenticate("ana", PASSWORD, url=db_url).name == "ana"


# --- the CLI's --as -------------------------------------------------------------------------------------------------


def test_actor_for_an_active_user_only(any_db_url):
    add_user("ana", "manager", PASSWORD, url=any_db_url)
    add_user("gone", "admin", PASSWORD, url=any_db_url)
    disable_user("gone", url=any_db_url)
    assert actor_for("ana", url=any_db_url) == Actor("ana", Role.MANAGER)
    for name in ("gone", "nobody"):
        with pytest.raises(BadInputError, match=f"no active user {name}"):
            actor_for(name, url=any_db_url)


# --- OpenID Connect -----------------------------------------------------------------------------------------------


def test_a_role_claim_as_a_string_or_a_list(any_db_url):
    claims = {"sub": "u-1", "email": "Ana@Example.com", "preferred_username": "ana"}
    assert actor_for_claims(claims | {"roles": "engineer"}, "roles", url=any_db_url) == Actor(
        "ana@example.com", Role.ENGINEER
    )
    listed = claims | {"groups": ["staff", "annotator", "Manager", "engineer"]}
    assert actor_for_claims(listed, "groups", url=any_db_url) == Actor("ana@example.com", Role.MANAGER)
    assert actor_for_claims(claims | {"roles": "annotator admin"}, "roles", url=any_db_url).role is Role.ADMIN


def test_without_a_role_claim_the_users_table_gives_the_role_for_the_email(any_db_url):
    add_user("Ana Lima", "engineer", email="ana@example.com", url=any_db_url)
    claims = {"sub": "u-1", "email": "ANA@example.com", "roles": ["staff"]}
    assert actor_for_claims(claims, "roles", url=any_db_url) == Actor("ana@example.com", Role.ENGINEER)
    assert actor_for_claims(claims | {"roles": "admin"}, "roles", url=any_db_url).role is Role.ADMIN  # claim first


def test_no_role_anywhere_is_refused(any_db_url):
    add_user("bo", "admin", email="bo@example.com", url=any_db_url)
    for claims in ({"sub": "u-2", "email": "cy@example.com"}, {"sub": "u-2", "roles": []}, {"sub": "u-2"}):
        assert _refused(actor_for_claims, claims, "roles", url=any_db_url) == NO_ROLE
    assert NO_ROLE == "your account has no role here: ask an admin to add you"


def test_a_disabled_user_is_refused_even_with_a_role_claim(any_db_url):
    add_user("ana", "engineer", email="ana@example.com", url=any_db_url)
    disable_user("ana", url=any_db_url)
    for claims in ({"email": "ana@example.com"}, {"email": "ana@example.com", "roles": "admin"}):
        assert "disabled" in _refused(actor_for_claims, claims, "roles", url=any_db_url)


def test_the_name_falls_back_to_preferred_username_then_sub_and_an_unverified_email_is_ignored(db_url):
    add_user("ana", "admin", email="ana@example.com", url=db_url)
    roles = {"roles": "annotator"}
    assert actor_for_claims({"preferred_username": "ana.l", "sub": "u-1"} | roles, "roles", url=db_url).name == "ana.l"
    assert actor_for_claims({"sub": "u-1"} | roles, "roles", url=db_url).name == "u-1"
    unverified = {"email": "ana@example.com", "email_verified": False, "sub": "u-9"}
    assert _refused(actor_for_claims, unverified, "roles", url=db_url) == NO_ROLE  # not the admin's role
    assert actor_for_claims(unverified | roles, "roles", url=db_url) == Actor("u-9", Role.ANNOTATOR)
    assert "names nobody" in _refused(actor_for_claims, roles, "roles", url=db_url)
