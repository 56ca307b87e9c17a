"""Times read back from the database, made comparable.

SQLite hands timestamps back without a zone (they were stored in UTC); PostgreSQL hands
them back aware, in the session's zone.  Pure computation.
"""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC time (a naive one is taken to be UTC already)."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def seconds_since(moment: datetime) -> float:
    """Seconds from ``moment`` to now."""
    return (datetime.now(UTC) - as_utc(moment)).total_seconds()
