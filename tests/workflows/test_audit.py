"""core.workflows.audit: events recorded in the caller's transaction, read back newest first by a role that may
view the audit log, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core.access import OPERATOR, Action, Actor, Role, allowed
from core.errors import BadInputError, PermissionDeniedError, Reason
from core.workflows.audit import EVENT_KEYS, audit_events, record_event
from db.models import AuditEvent
from db.session import session_scope, write_transaction

ANA = Actor("ana", Role.ENGINEER)


def _record(url: str, *args, **kwargs) -> None:
    write_transaction(lambda session: record_event(session, *args, **kwargs), url)


def _count(url: str) -> int:
    with session_scope(url) as session:
        return session.scalar(select(func.count()).select_from(AuditEvent))


def test_events_come_back_newest_first_with_exactly_these_keys(any_db_url):
    _record(any_db_url, ANA, Action.SET_THRESHOLD, "fan/id_00", "3.25 (max_f1)")
    _record(any_db_url, ANA, "undo", "clip 12")
    _record(any_db_url, None, Action.ACTIVATE_MODEL, 7)  # None: the operator
    events = audit_events(url=any_db_url)
    assert all(tuple(event) == EVENT_KEYS == ("at", "user", "role", "action", "target", "detail") for event in events)
    assert [(e["user"], e["role"], e["action"], e["target"], e["detail"]) for e in events] == [
        ("operator", "admin", "activate model", "7", ""),
        ("ana", "engineer", "undo", "clip 12", ""),
        ("ana", "engineer", "set threshold", "fan/id_00", "3.25 (max_f1)"),
    ]
    moments = [datetime.fromisoformat(e["at"]) for e in events]
    assert all(m.utcoffset() == timedelta(0) for m in moments)  # ISO 8601 in UTC
    assert moments == sorted(moments, reverse=True)
    assert abs(datetime.now(UTC) - moments[0]) < timedelta(minutes=1)


def test_the_limit_keeps_the_newest(any_db_url):
    for k in range(5):
        _record(any_db_url, ANA, "undo", f"clip {k}")
    assert [e["target"] for e in audit_events(2, url=any_db_url)] == ["clip 4", "clip 3"]
    assert len(audit_events(10_000, url=any_db_url)) == 5


@pytest.mark.parametrize("limit", [0, -1, 10_001, 2.5, "10", True, None])
def test_a_bad_limit_is_refused_naming_it(db_url, limit):
    with pytest.raises(BadInputError, match="limit must be a whole number from 1 to 10000") as caught:
        audit_events(limit, url=db_url)
    assert caught.value.reason is Reason.INVALID_PARAMETER


def test_an_event_is_part_of_the_callers_transaction(any_db_url):
    def fails(session):
        record_event(session, ANA, "undo", "clip 1")
        raise BadInputError(Reason.NOT_FOUND, "no clip with id 1")

    with pytest.raises(BadInputError):
        write_transaction(fails, any_db_url)
    assert _count(any_db_url) == 0  # rolled back with the change it described
    _record(any_db_url, ANA, "undo", "clip 1")
    assert _count(any_db_url) == 1


@pytest.mark.parametrize("action", ["", "   ", "x" * 33])
def test_an_action_is_a_short_phrase(db_url, action):
    with pytest.raises(BadInputError, match="action must be 1 to 32 characters"):
        _record(db_url, ANA, action, "clip 1")
    assert _count(db_url) == 0


def test_a_user_name_longer_than_the_log_keeps_is_refused_on_every_backend(any_db_url):
    with pytest.raises(BadInputError, match=f"user '{'a' * 23}…' is 129 characters; at most 128"):
        _record(any_db_url, Actor("a" * 129, Role.ADMIN), Action.INGEST, "/data")
    _record(any_db_url, Actor("a" * 128, Role.ADMIN), Action.INGEST, "/data")
    assert _count(any_db_url) == 1


@pytest.mark.parametrize("role", list(Role))
def test_only_managers_and_admins_view_the_audit_log(any_db_url, role):
    _record(any_db_url, ANA, "undo", "clip 1")
    viewer = Actor("viewer", role)
    if allowed(role, Action.VIEW_AUDIT):
        assert role in (Role.MANAGER, Role.ADMIN)
        assert [e["target"] for e in audit_events(actor=viewer, url=any_db_url)] == ["clip 1"]
    else:
        with pytest.raises(PermissionDeniedError, match=rf"viewer may not view audit: .* \(you are {role}\)"):
            audit_events(actor=viewer, url=any_db_url)
    assert _count(any_db_url) == 1  # viewing (or being refused) writes nothing


def test_the_operator_may_view_it(db_url):
    assert OPERATOR.may(Action.VIEW_AUDIT)
    assert audit_events(url=db_url) == []
