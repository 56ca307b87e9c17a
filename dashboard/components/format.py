"""Numbers as people read them on the pages: plain decimals, never ``5`` for a threshold of 4.996, never ``1.2e-05``.

Scores and thresholds are compared by eye (is this clip above its threshold?), so :func:`number` keeps four
significant digits without scientific notation, and :func:`numbers_apart` adds digits until two different values
read differently.  Missing values read as :data:`MISSING` instead of ``None`` or ``nan``.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np

MISSING = "—"  # an em dash: nothing to show (no model, no verdict yet, not computed)
SIGNIFICANT = 4
MAX_SIGNIFICANT = 12


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` things in words: ``1 clip``, ``3 clips``, ``0 clips`` (``plural``, else ``noun`` + s, unless n is 1)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def number(value: float | None, digits: int = SIGNIFICANT, *, missing: str = MISSING) -> str:
    """``value`` with ``digits`` significant digits as plain decimals (``4.996``, ``0.0001235``), whole numbers
    of more digits whole (``123457``), trailing zeros dropped; ``missing`` for ``None`` or NaN, infinities as
    ``inf``/``-inf``."""
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return missing
    value = float(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if abs(value) >= 10**digits:
        return f"{value:.0f}"
    text = np.format_float_positional(value, precision=digits, unique=False, fractional=False, trim="-")
    return "0" if text in ("-0", "0") else text


def numbers_apart(a: float | None, b: float | None, digits: int = SIGNIFICANT) -> tuple[str, str]:
    """``(number(a), number(b))`` with as many more significant digits as it takes (up to
    ``MAX_SIGNIFICANT``) for two different values to read differently: a score just above its threshold never
    reads as equal to it."""
    for n in range(digits, MAX_SIGNIFICANT + 1):
        shown = number(a, n), number(b, n)
        if a is None or b is None or a == b or shown[0] != shown[1]:
            return shown
    return shown


def fixed(value: float | None, decimals: int = 3, *, missing: str = MISSING) -> str:
    """``value`` with exactly ``decimals`` decimals (``0.520``, ``1.000``), for figures of one kind read side by
    side in a column (precision, recall, AUC...), where ``0.52`` beside ``0.929`` and ``1`` for a recall would
    look like different precisions; ``missing`` for ``None`` or NaN."""
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return missing
    return f"{float(value):.{decimals}f}"


def when(value: datetime | None, *, missing: str = MISSING, seconds: bool = False) -> str:
    """A timestamp to the minute (``2026-11-25 14:03``), or to the second with ``seconds`` (``2026-11-25
    14:03:59``, for logs where order within a minute matters), or ``missing``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    try:
        return f"{value:%Y-%m-%d %H:%M:%S}" if seconds else f"{value:%Y-%m-%d %H:%M}"
    except ValueError:  # pandas' NaT formats as nothing sensible
        return missing


def duration(seconds: float) -> str:
    """How long something took, as people say it: ``under 0.1 s``, ``0.4 s``, ``12 s``, ``2 min 05 s``."""
    if seconds < 0.1:
        return "under 0.1 s"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"
