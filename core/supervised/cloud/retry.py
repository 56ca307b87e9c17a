"""Calling AWS with exponential backoff when it throttles."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
THROTTLING_CODES = frozenset({"ThrottlingException", "ProvisionedThroughputExceededException",
                              "TooManyRequestsException", "SlowDown", "RequestLimitExceeded"})  # fmt: skip


def is_throttling(exc: Exception) -> bool:
    return getattr(exc, "response", {}).get("Error", {}).get("Code") in THROTTLING_CODES


def with_backoff(
    call: Callable[[], T], *, attempts: int = 6, base_s: float = 0.5, cap_s: float = 20.0,
    sleep: Callable[[float], None] = time.sleep, on_retry: Callable[[int, float], None] | None = None,
) -> T:  # fmt: skip
    """``call()``, retried up to ``attempts`` times in all while AWS throttles, sleeping a random
    ("full jitter") time up to ``base_s * 2**n`` seconds, at most ``cap_s``, between tries.
    Other errors, and the last throttling error, propagate."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            if not is_throttling(exc) or attempt == attempts - 1:
                raise
            delay = random.uniform(0.0, min(cap_s, base_s * 2**attempt))
            if on_retry:
                on_retry(attempt + 1, delay)
            sleep(delay)
    raise AssertionError("unreachable")
