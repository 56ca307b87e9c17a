"""Who may do what: roles, the actions they allow, and the one permission table.

Every ``core`` function that changes state takes the acting user (an :class:`Actor`) and calls
:func:`require` before it writes anything, so a role is enforced whatever the caller (a page, the CLI,
a script) shows or hides.  The CLI acts as :data:`OPERATOR` (full rights) unless told ``--as NAME``;
with ``AUTH=none`` the dashboard's one local user is an admin too (the server then listens on
loopback only).  Pure: imports nothing of the database or the UI.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from core.errors import PermissionDeniedError, check_text
from core.vocabulary import PERSON_NAME_LENGTH, Role  # roles: product words (the database checks them); re-exported

__all__ = ["Role", "Action", "PERMISSIONS", "Actor", "OPERATOR", "allowed", "why_not", "require"]


class Action(StrEnum):
    """Something a user does that the product records or guards."""

    JUDGE = "judge"  # record a verdict, undo one's own
    ADJUDICATE = "adjudicate"  # see every verdict of a disputed or unsure clip and record the final one
    INGEST = "ingest"  # register clips: a folder, uploads
    SET_THRESHOLD = "set threshold"
    TRAIN = "train"  # train an unsupervised detector, choose a detector for a machine
    EXPORT = "export"  # write the curated dataset
    TRAIN_SUPERVISED = "train supervised"  # local classifier on an export
    CLOUD_TRAIN = "cloud train"  # start paid cloud training (after its cost confirmation)
    CLOUD_EVALUATE = "cloud evaluate"  # start a paid cloud model (after its cost confirmation), stop it
    ACTIVATE_MODEL = "activate model"  # make a model the machine's active one
    VIEW_AUDIT = "view audit"  # the audit log and every report
    MANAGE_USERS = "manage users"
    CLOUD_SETTINGS = "cloud settings"


# The one permission table: the least role each action needs.
PERMISSIONS: dict[Action, Role] = {
    Action.JUDGE: Role.ANNOTATOR,
    Action.ADJUDICATE: Role.ENGINEER,
    Action.INGEST: Role.ENGINEER,
    Action.SET_THRESHOLD: Role.ENGINEER,
    Action.TRAIN: Role.ENGINEER,
    Action.EXPORT: Role.ENGINEER,
    Action.TRAIN_SUPERVISED: Role.ENGINEER,
    Action.CLOUD_TRAIN: Role.ENGINEER,
    Action.CLOUD_EVALUATE: Role.ENGINEER,
    Action.ACTIVATE_MODEL: Role.MANAGER,
    Action.VIEW_AUDIT: Role.MANAGER,
    Action.MANAGE_USERS: Role.ADMIN,
    Action.CLOUD_SETTINGS: Role.ADMIN,
}


@dataclass(frozen=True)
class Actor:
    """The signed-in person (or the CLI's operator) on whose behalf ``core`` acts.

    Attributes
    ----------
    name : str
        What records show as who (a verdict's annotator, a threshold's "set by").
    role : Role
    """

    name: str
    role: Role
    operator: bool = False  # the CLI's operator: full rights, and may record work in another person's name

    def may(self, action: Action) -> bool:
        return allowed(self.role, action)


OPERATOR = Actor("operator", Role.ADMIN, operator=True)  # the CLI's default (``--as NAME`` acts as a user)


def allowed(role: Role | str, action: Action | str) -> bool:
    """Whether ``role`` may do ``action`` (:data:`PERMISSIONS`)."""
    return Role(role).rank >= PERMISSIONS[Action(action)].rank


def why_not(role: Role | str, action: Action | str) -> str | None:
    """None when ``role`` may do ``action``, else the reason in words (for a disabled control's tooltip)."""
    if allowed(role, action):
        return None
    return f"{Action(action).value} needs the {PERMISSIONS[Action(action)].value} role (you are {Role(role).value})"


def require(actor: Actor | None, action: Action | str) -> Actor:
    """The actor (``None``: :data:`OPERATOR`) if its role allows ``action``; else :class:`PermissionDeniedError`."""
    actor = actor or OPERATOR
    reason = why_not(actor.role, action)
    if reason:
        raise PermissionDeniedError(f"{actor.name} may not {Action(action).value}: {reason}")
    return actor


def on_behalf_of(actor: Actor | None, name: str) -> Actor:
    """The actor a record and its audit event name: the operator acting for ``name`` is shown as ``name``
    (with the operator's role); anyone else as themselves."""
    actor = actor or OPERATOR
    return replace(actor, name=name) if actor.operator and name else actor


def checked_name(name: str | None, field: str = "name") -> str:
    """``name`` stripped (None: empty) when a record can carry it, at most
    :data:`core.vocabulary.PERSON_NAME_LENGTH` characters; else :class:`~core.errors.BadInputError` naming
    ``field`` and the limit."""
    return check_text(field, (name or "").strip(), PERSON_NAME_LENGTH)


def worker_name(actor: Actor, name: str) -> str:
    """Who a record of ``actor``'s work names (a model's trainer, an export's author): the ``name`` the CLI's
    operator gives (stripped; checked with :func:`checked_name` as field ``user``), else the actor's own."""
    return checked_name(name, "user") if actor.operator else actor.name


def recorded_name(actor: Actor | None, action: Action | str, name: str | None = None, *, field: str = "name") -> str:
    """Check ``action`` for ``actor`` (:func:`require`) and return the name the record will carry.

    A signed-in user always acts in their own name: ``name``, when given, must be theirs (nobody can
    judge, undo or set a threshold as someone else).  The CLI's operator records the ``name`` it is
    given (``annotate --annotator NAME``), stripped and possibly empty: the caller says what is missing.
    A name longer than a person's name may be (:data:`core.vocabulary.PERSON_NAME_LENGTH`) raises
    :class:`~core.errors.BadInputError` naming ``field`` (e.g. ``annotator``) and the limit.
    """
    actor = require(actor, action)
    given = checked_name(name, field)
    if actor.operator:
        return given
    if given and given != actor.name:
        raise PermissionDeniedError(f"{actor.name} may not act as {given!r}: records carry the signed-in user")
    return actor.name
