"""The one exception type for bad input, and the reasons it can carry.

Like librosa's ``ParameterError``, every bad-input failure in the project raises
:class:`BadInputError`.  Its ``reason`` is one of :class:`Reason`, a stable
machine-readable code that CLIs, the dashboard and benchmarks rely on; its
``path`` names the offending file when there is one.
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
    WRONG_SAMPLE_RATE = "wrong_sample_rate"  # not the sample rate the machine's model works at
    NOT_FOUND = "not_found"
    INVALID_PARAMETER = "invalid_parameter"


class BadInputError(ValueError):
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
        super().__init__(f"{where}{detail} [{self.reason.value}]")

    def __reduce__(self):  # keeps reason/detail/path across process boundaries
        return (BadInputError, (self.reason, self.detail, self.path))

    def with_path(self, path: str | PathLike) -> BadInputError:
        """The same error, naming ``path`` (used when pure code raised it)."""
        return BadInputError(self.reason, self.detail, path)
