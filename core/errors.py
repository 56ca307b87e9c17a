"""The project's exceptions: one root, and one type per kind of failure a user can act on.

* :class:`MachineSoundError` is the root (as librosa's ``LibrosaError``): the CLI and the dashboard
  catch it and show its ``detail`` as one clear line.  Anything else escaping is a bug, and shows as one.
* :class:`BadInputError`: a file, a name or a parameter is wrong.  Its ``reason`` is one of
  :class:`Reason`, a stable machine-readable code that CLIs, the dashboard and benchmarks rely on;
  its ``path`` names the offending file when there is one.
* :class:`StateError` and its kinds :class:`NoModelError`, :class:`NotFittedError`: the request is
  fine but the product is not ready for it yet (train a model first).
* :class:`PermissionDeniedError`: the signed-in user's role does not allow the action.
* :class:`SignInError`: a sign-in was refused (one message for a wrong name, password or disabled account).
* :class:`CloudError`: a cloud call failed (AWS's code and message).

:func:`check_text` refuses text that a database cannot store: longer than the column it goes to (the
lengths of :mod:`core.vocabulary`), or holding a NUL character, with a :class:`BadInputError` naming the field.
"""

from __future__ import annotations

from enum import StrEnum
from os import PathLike


class Reason(StrEnum):
    """Why an input was refused.  The values are stable contract names."""

    NOT_AUDIO = "not_audio"
    CORRUPT = "corrupt"
    EMPTY = "empty"
    NON_FINITE = "non_finite"
    SILENT = "silent"
    CHANNEL_OUT_OF_RANGE = "channel_out_of_range"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    TOO_LARGE = "too_large"  # more bytes than MAX_UPLOAD_MB (an upload, an S3 object), refused before reading it
    SAMPLE_RATE_OUT_OF_RANGE = "sample_rate_out_of_range"  # below MIN_SAMPLE_RATE or above MAX_SAMPLE_RATE
    WRONG_SAMPLE_RATE = "wrong_sample_rate"  # not the sample rate the machine's model works at
    NOT_FOUND = "not_found"
    INVALID_PARAMETER = "invalid_parameter"
    UNEXPECTED = "unexpected_error"  # not the file's fault: a bug met while processing it (reported, batch goes on)


class MachineSoundError(Exception):
    """Root of every error the product raises on purpose; ``detail`` says what is wrong in the user's words."""

    def __init__(self, detail: str):
        self.detail = detail
        super().__init__(detail)


class StateError(MachineSoundError):
    """The request is valid, but the product is not in a state to answer it yet."""


class NoModelError(StateError):
    """A machine (or a job) has no trained model that could do this: train one first."""


class NotFittedError(StateError):
    """A detector was asked to score or save before it was fitted."""


class PermissionDeniedError(MachineSoundError):
    """The acting user's role does not allow this action (see :mod:`core.access`)."""


class SignInError(MachineSoundError):
    """A sign-in was refused: wrong username or password (one message whichever it was), too many failed
    attempts for the name, or an OpenID Connect account with no role here (see :mod:`core.workflows.users`)."""


class CloudError(MachineSoundError):
    """A cloud call failed; the message names the operation and AWS's error code and text."""


class BadInputError(MachineSoundError, ValueError):
    """Bad input: names the file (when there is one) and the reason.

    Attributes
    ----------
    reason : Reason
        Stable code for what is wrong.
    path : str or None
        The file at fault, if any.
    detail : str
        Human-readable explanation of the problem.
    """

    def __init__(self, reason: Reason, detail: str, path: str | PathLike | None = None):
        self.reason = Reason(reason)
        self.path = None if path is None else str(path)
        self.detail = detail
        where = f"{self.path}: " if self.path else ""
        Exception.__init__(self, f"{where}{detail} [{self.reason.value}]")

    def __reduce__(self):  # keeps reason/detail/path across process boundaries
        return (BadInputError, (self.reason, self.detail, self.path))

    def with_path(self, path: str | PathLike) -> BadInputError:
        """The same error, naming ``path`` (used when pure code raised it)."""
        return BadInputError(self.reason, self.detail, path)


def shown(text: str, width: int = 24) -> str:
    """``text`` quoted for an error message, cut to about ``width`` characters (``'xxxx…'``)."""
    return repr(text if len(text) <= width else text[: width - 1] + "…")


def check_text(field: str, value: str, limit: int | None = None, path: str | PathLike | None = None) -> str:
    """``value`` when every database can store it: at most ``limit`` characters (the length of the column it
    goes to, :mod:`core.vocabulary`; None: unbounded text) and no NUL character (PostgreSQL refuses one, SQLite
    keeps it).  Else :class:`BadInputError` (``invalid_parameter``) naming ``field`` and the limit, e.g.
    ``machine id 'xxxx…' is 80 characters; at most 64``, and ``path`` when given."""
    if limit is not None and len(value) > limit:
        raise BadInputError(Reason.INVALID_PARAMETER, f"{field} {shown(value)} is {len(value)} characters; "
                            f"at most {limit}", path)  # fmt: skip
    if "\x00" in value:
        raise BadInputError(Reason.INVALID_PARAMETER, f"{field} {shown(value)} holds a NUL character (\\x00), "
                            "which cannot be stored", path)  # fmt: skip
    return value


def environment_problem(exc: BaseException) -> str | None:
    """One line for a failure of the machine around the product rather than of its code, or None.

    The database refusing (read-only, corrupt, unreachable: SQLAlchemy's errors carry ``orig``, the
    driver's own error, and ``statement``, the SQL, which is never shown) and the file system refusing
    (a full disk, a name too long, no permission: ``OSError``).  Anything else is a bug.
    """
    orig = getattr(exc, "orig", None)
    if orig is not None and hasattr(exc, "statement"):
        return f"the database could not be used: {str(orig).splitlines()[0] if str(orig) else type(orig).__name__}"
    if type(exc).__module__.startswith("sqlalchemy"):
        return f"the database could not be used: {type(exc).__name__}"
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or type(exc).__name__}{where}"
    return None
