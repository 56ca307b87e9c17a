"""The audit log: who did what, when, with which role.  Append-only.

Each state-changing workflow records its event with :func:`record_event` in the very transaction
that makes the change, so the log never claims what did not happen and never misses what did.
Reading it (:func:`audit_events`) needs :attr:`core.access.Action.VIEW_AUDIT`.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.access import OPERATOR, Action, Actor, require
from core.clock import as_utc
from core.errors import BadInputError, Reason, check_text
from core.vocabulary import AUDIT_ACTION_LENGTH, PERSON_NAME_LENGTH
from db.models import AuditEvent, utcnow
from db.queries import audit_events_newest_first
from db.session import session_scope

MAX_ACTION_LENGTH = AUDIT_ACTION_LENGTH  # the column's width
MAX_EVENTS = 10_000  # the most events one call returns
EVENT_KEYS = ("at", "user", "role", "action", "target", "detail")


def record_event(session: Session, actor: Actor | None, action: Action | str, target: object, detail: str = "") -> None:
    """Add an audit event to the caller's transaction (committed, or rolled back, with the change it records).

    ``actor`` None is :data:`core.access.OPERATOR`; ``action`` an :class:`~core.access.Action` or a short
    phrase such as ``"undo"`` or ``"sign in"``; ``target`` what was acted on (shown with ``str``).  Returns
    nothing; raises :class:`BadInputError` when ``action`` is empty or longer than 32 characters, or the
    actor's name longer than a person's name may be (128 characters).
    """
    actor = actor or OPERATOR
    check_text("user", actor.name, PERSON_NAME_LENGTH)
    action = str(action.value if isinstance(action, Action) else action).strip()
    if not 0 < len(action) <= MAX_ACTION_LENGTH:
        raise BadInputError(Reason.INVALID_PARAMETER,
                            f"action must be 1 to {MAX_ACTION_LENGTH} characters, got {action!r}")  # fmt: skip
    session.add(AuditEvent(at=utcnow(), user=actor.name, role=str(actor.role), action=action,
                           target=_text(target), detail=_text(detail)))  # fmt: skip


def _text(value: object) -> str:
    """``value`` as storable text: a file name that is not valid UTF-8 keeps its bytes as ``\\xNN`` escapes."""
    return str(value).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def audit_events(limit: int = 100, *, actor: Actor | None = None, url: str | None = None) -> list[dict]:
    """The latest ``limit`` (1 to 10,000) audit events, the newest first, each
    ``{"at", "user", "role", "action", "target", "detail"}`` (``at``: ISO 8601, UTC).

    Raises :class:`core.errors.PermissionDeniedError` unless ``actor`` may view the audit log (None: the
    operator), and :class:`BadInputError` naming ``limit`` when it is not a whole number in range.
    """
    require(actor, Action.VIEW_AUDIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_EVENTS:
        raise BadInputError(Reason.INVALID_PARAMETER, f"limit must be a whole number from 1 to {MAX_EVENTS}, "
                            f"got {limit!r}")  # fmt: skip
    with session_scope(url) as session:
        rows = audit_events_newest_first(session, limit)
        return [
            {"at": as_utc(row.at).isoformat(), "user": row.user, "role": row.role, "action": row.action,
             "target": row.target, "detail": row.detail}
            for row in rows
        ]  # fmt: skip
