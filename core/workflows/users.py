"""Accounts and sign-in: users and their roles, password checks with rate limiting, and the actor
an OpenID Connect sign-in stands for.

* Managing users (:func:`add_user`, :func:`set_role`, :func:`disable_user`) needs
  :attr:`~core.access.Action.MANAGE_USERS`; each records an audit event in the transaction that makes
  the change.  Users are never deleted: a disabled one keeps what they did attributable.
* :func:`authenticate` checks a local password against its argon2id hash (argon2-cffi's
  :class:`~argon2.PasswordHasher`, rehashed when its parameters have aged).  A wrong name, a wrong
  password, a disabled account and an account without a password all get one message, so a refusal
  never tells whether a name exists.  After :data:`MAX_FAILED_SIGN_INS` failures for a name within
  :data:`FAILED_SIGN_IN_WINDOW` the name is refused without checking the password until the oldest of
  them ages out; a success clears the name's failures.
* :func:`actor_for_claims` maps an OpenID Connect ID token's claims to an actor: its role from the
  role claim, else from the user an admin added with that e-mail.

A password is never logged, stored, shown or put in an error; its hash never leaves this module.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from core.access import Action, Actor, Role, require
from core.clock import as_utc
from core.errors import BadInputError, Reason, SignInError
from core.vocabulary import EMAIL_LENGTH, PERSON_NAME_LENGTH
from core.workflows.audit import record_event
from db.models import User, utcnow
from db.queries import (
    add_failed_sign_in,
    clear_failed_sign_ins,
    failed_sign_ins_since,
    user_by_email,
    user_by_name,
    users_by_name,
)
from db.session import session_scope, write_transaction

MAX_FAILED_SIGN_INS = 5  # failures for one name within the window before the name is refused
FAILED_SIGN_IN_WINDOW = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # hashing is deliberately slow: an enormous password is refused, not hashed
MAX_NAME_LENGTH = PERSON_NAME_LENGTH  # the users.name column's length
MAX_EMAIL_LENGTH = EMAIL_LENGTH

WRONG_CREDENTIALS = "wrong username or password"
NO_ROLE = "your account has no role here: ask an admin to add you"
DISABLED = "your account is disabled here: ask an admin"

_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$")  # no blanks, no control characters
_hasher = PasswordHasher()


# --- checking what people type ----------------------------------------------------------------------------------


def _shown(value: object) -> str:
    """``value`` for an error message, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _valid_name(name: object) -> bool:
    return (isinstance(name, str) and 1 <= len(name) <= MAX_NAME_LENGTH and name.isprintable()
            and name == name.strip())  # fmt: skip


def _check_name(name: object) -> str:
    """``name`` if it is 1-128 printable characters without leading or trailing blanks; else BadInputError."""
    if not _valid_name(name):
        raise BadInputError(Reason.INVALID_PARAMETER, f"name must be 1 to {MAX_NAME_LENGTH} printable characters "
                            f"without leading or trailing spaces, got {_shown(name)}")  # fmt: skip
    return name


def _check_role(role: object) -> Role:
    """``role`` as a :class:`Role` (any case); else BadInputError naming the field and the four roles."""
    value = role.strip().lower() if isinstance(role, str) else role
    if value not in tuple(Role):
        raise BadInputError(Reason.INVALID_PARAMETER, f"role must be one of {', '.join(Role)}, got {_shown(role)}")
    return Role(value)


def _check_password(password: object) -> str:
    """``password`` if it is a string of 8 to 1024 characters; else BadInputError (never quoting it)."""
    if not isinstance(password, str) or not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        got = f"{len(password)} characters" if isinstance(password, str) else type(password).__name__
        raise BadInputError(Reason.INVALID_PARAMETER, f"password must be {MIN_PASSWORD_LENGTH} to "
                            f"{MAX_PASSWORD_LENGTH} characters long, got {got}")  # fmt: skip
    return password


def _check_email(email: object) -> str | None:
    """``email`` stripped and in lower case (None stays None); else BadInputError naming the field."""
    if email is None:
        return None
    value = email.strip().lower() if isinstance(email, str) else ""
    if not (_EMAIL.match(value) and len(value) <= MAX_EMAIL_LENGTH):
        example = "an e-mail address such as ana@example.com"
        raise BadInputError(Reason.INVALID_PARAMETER, f"email must be {example}, got {_shown(email)}")
    return value


def _public(user: User) -> dict:
    """What anyone may see of a user: ``{"name", "role", "active"}`` (never the hash)."""
    return {"name": user.name, "role": user.role, "active": bool(user.active)}


def _existing(session: Session, name: str) -> User:
    """The user named ``name``; BadInputError (``not_found``) naming the field when there is none."""
    user = user_by_name(session, name)
    if user is None:
        raise BadInputError(Reason.NOT_FOUND, f"name: no user named {name!r}")
    return user


# --- managing users ---------------------------------------------------------------------------------------------


def add_user(name: str, role: Role | str, password: str | None = None, *, email: str | None = None,
             actor: Actor | None = None, url: str | None = None) -> dict:  # fmt: skip
    """Add an active user; returns ``{"name", "role", "active"}``.

    With a ``password`` (8 to 1024 characters; only its argon2id hash is stored) the user signs in
    locally; without one the user signs in with OpenID Connect only and needs an ``email`` (stored in
    lower case), by which the sign-in finds their role.  Raises PermissionDeniedError unless ``actor``
    (None: the operator) may manage users, and BadInputError naming the field for a bad name, role,
    password or e-mail, or a name or e-mail another user has.
    """
    actor = require(actor, Action.MANAGE_USERS)
    name, role, email = _check_name(name), _check_role(role), _check_email(email)
    if password is None and email is None:
        raise BadInputError(Reason.INVALID_PARAMETER, "email is required for a user without a password: "
                            "they sign in with OpenID Connect, which names them by e-mail")  # fmt: skip
    password_hash = None if password is None else _hasher.hash(_check_password(password))
    how = "with a password" if password_hash else "OpenID Connect only"
    detail = f"role {role}, {how}" + (f", e-mail {email}" if email else "")

    def store(session: Session) -> dict:
        if user_by_name(session, name) is not None:
            raise BadInputError(Reason.INVALID_PARAMETER, f"name: a user named {name!r} already exists")
        if email is not None and user_by_email(session, email) is not None:
            raise BadInputError(Reason.INVALID_PARAMETER, f"email: {email} is another user's e-mail already")
        user = User(name=name, email=email, role=role.value, password_hash=password_hash, active=True)
        session.add(user)
        record_event(session, actor, "add user", name, detail)
        return _public(user)

    return write_transaction(store, url)


def set_role(name: str, role: Role | str, *, actor: Actor | None = None, url: str | None = None) -> dict:
    """Give user ``name`` the ``role``; returns ``{"name", "role", "active"}``.

    Raises PermissionDeniedError unless ``actor`` (None: the operator) may manage users, and
    BadInputError for a bad role or name, or a name no user has.
    """
    actor = require(actor, Action.MANAGE_USERS)
    name, role = _check_name(name), _check_role(role)

    def store(session: Session) -> dict:
        user = _existing(session, name)
        record_event(session, actor, "set role", name, f"{user.role} -> {role}")
        user.role = role.value
        return _public(user)

    return write_transaction(store, url)


def disable_user(name: str, *, actor: Actor | None = None, url: str | None = None) -> dict:
    """Disable user ``name``: they can no longer sign in, and what they did stays theirs; returns
    ``{"name", "role", "active"}``.  Raises PermissionDeniedError unless ``actor`` (None: the operator)
    may manage users, and BadInputError for a bad name or one no user has."""
    actor = require(actor, Action.MANAGE_USERS)
    name = _check_name(name)

    def store(session: Session) -> dict:
        user = _existing(session, name)
        record_event(session, actor, "disable user", name, "" if user.active else "was disabled already")
        user.active = False
        return _public(user)

    return write_transaction(store, url)


def list_users(*, url: str | None = None) -> list[dict]:
    """Every user as ``{"name", "role", "active"}``, sorted by name (never a password hash)."""
    with session_scope(url) as session:
        return [_public(user) for user in users_by_name(session)]


def actor_for(name: str, *, url: str | None = None) -> Actor:
    """The actor of the active user ``name`` (the CLI's ``--as``).  Raises BadInputError
    ``no active user NAME`` when no active user has that name (or it is not a valid name)."""
    with session_scope(url) as session:
        user = user_by_name(session, name) if _valid_name(name) else None
        if user is None or not user.active:
            raise BadInputError(Reason.NOT_FOUND, f"no active user {name if _valid_name(name) else _shown(name)}")
        return Actor(user.name, Role(user.role))


# --- signing in with a password ---------------------------------------------------------------------------------


@cache
def _decoy_hash() -> str:
    """A hash no password matches, checked when there is no real one, so a refusal takes as long either way."""
    import secrets

    return _hasher.hash(secrets.token_urlsafe(32))


def _password_matches(user: User | None, password: str) -> bool:
    """Whether ``password`` is the one of ``user``, an active user with a password."""
    if user is None or not user.active or user.password_hash is None:
        _verify(_decoy_hash(), password)
        return False
    return _verify(user.password_hash, password)


def _verify(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (False for a mismatch or a hash argon2 cannot read)."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _locked_for(failures: list[datetime], now: datetime) -> int | None:
    """Minutes (at least 1) until the name may try again, given its failures within the window (newest
    first); None when it may try now."""
    if len(failures) < MAX_FAILED_SIGN_INS:
        return None
    unlocked_at = as_utc(failures[MAX_FAILED_SIGN_INS - 1]) + FAILED_SIGN_IN_WINDOW
    return max(1, math.ceil((unlocked_at - now).total_seconds() / 60))


def _attempt(session: Session, name: str, password: str) -> Actor | str:
    """One sign-in attempt in ``session``: the actor, or the refusal's message (failures are recorded,
    so the caller raises only after the transaction commits)."""
    now = utcnow()
    minutes = _locked_for(failed_sign_ins_since(session, name, now - FAILED_SIGN_IN_WINDOW), now)
    if minutes is not None:
        return f"too many failed sign-ins for this name; try again in {minutes} minute{'s' * (minutes != 1)}"
    user = user_by_name(session, name)
    if not _password_matches(user, password):
        add_failed_sign_in(session, name, now, forget_before=now - FAILED_SIGN_IN_WINDOW)
        return WRONG_CREDENTIALS
    clear_failed_sign_ins(session, name)
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    actor = Actor(user.name, Role(user.role))
    record_event(session, actor, "sign in", user.name, "password")
    return actor


def authenticate(name: str, password: str, *, url: str | None = None) -> Actor:
    """The actor of the local user ``name`` (leading and trailing blanks ignored) if ``password`` is theirs.

    Raises :class:`SignInError` "wrong username or password" for an unknown name, a wrong password, a
    disabled user and one without a password alike (each such failure is counted for the name), and
    "too many failed sign-ins for this name; try again in N minutes" after 5 failures within 15 minutes,
    without checking the password.  A success clears the name's failures, rehashes a hash made with
    outdated parameters, and records a "sign in" audit event.
    """
    name = name.strip() if isinstance(name, str) else ""
    if not _valid_name(name) or not isinstance(password, str):
        _verify(_decoy_hash(), "")
        raise SignInError(WRONG_CREDENTIALS)
    outcome = write_transaction(lambda session: _attempt(session, name, password), url)
    if isinstance(outcome, Actor):
        return outcome
    raise SignInError(outcome)


# --- signing in with OpenID Connect -----------------------------------------------------------------------------


def _claimed_roles(value: object) -> Role | None:
    """The highest of the roles that a role claim (a string, or a list of strings) names; None if none."""
    items = value if isinstance(value, list | tuple) else [value]
    words = [word.lower() for item in items if isinstance(item, str) for word in re.split(r"[\s,]+", item)]
    roles = [Role(word) for word in words if word in tuple(Role)]
    return max(roles, key=lambda role: role.rank) if roles else None


def _claimed_email(claims: Mapping) -> str | None:
    """The claims' e-mail in lower case; None when absent, malformed, or marked unverified."""
    email = claims.get("email")
    if not isinstance(email, str) or claims.get("email_verified") is False:
        return None
    email = email.strip().lower()
    return email if _EMAIL.match(email) and len(email) <= MAX_EMAIL_LENGTH else None


def _claimed_name(claims: Mapping, email: str | None) -> str:
    """The name an OpenID Connect user goes by: the e-mail, else ``preferred_username``, else ``sub``."""
    for candidate in (email, claims.get("preferred_username"), claims.get("sub")):
        if isinstance(candidate, str) and _valid_name(candidate.strip()):
            return candidate.strip()
    raise SignInError("your sign-in names nobody (no usable email, preferred_username or sub claim)")


def actor_for_claims(claims: Mapping, role_claim: str, *, url: str | None = None) -> Actor:
    """The actor an OpenID Connect sign-in stands for, from its ID token's ``claims``.

    Name: the ``email`` claim (lower case; ignored when ``email_verified`` is false), else
    ``preferred_username``, else ``sub``.  Role: the highest of the four roles that ``claims[role_claim]``
    names (a string or a list), else the role of the user an admin added with that e-mail.  Raises
    :class:`SignInError` when that user is disabled, or when neither gives a role.  Records nothing.
    """
    email = _claimed_email(claims)
    name = _claimed_name(claims, email)
    role = _claimed_roles(claims.get(role_claim))
    with session_scope(url) as session:
        user = user_by_email(session, email) if email else None
        if user is not None and not user.active:
            raise SignInError(DISABLED)
        role = role or (Role(user.role) if user is not None else None)
    if role is None:
        raise SignInError(NO_ROLE)
    return Actor(name, role)
