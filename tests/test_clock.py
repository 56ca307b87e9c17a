"""core.clock: database times, naive (SQLite) or aware in any zone (PostgreSQL), compared as UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from core.clock import as_utc, seconds_since


def test_naive_times_are_utc_and_aware_ones_are_converted():
    assert as_utc(datetime(2026, 11, 25, 15, 30)) == datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
    paris = datetime(2026, 11, 25, 16, 30, tzinfo=timezone(timedelta(hours=1)))
    assert as_utc(paris) == datetime(2026, 11, 25, 15, 30, tzinfo=UTC) and as_utc(paris).tzinfo == UTC


def test_seconds_since_reads_naive_and_aware_alike():
    ten_minutes_ago = datetime.now(UTC) - timedelta(minutes=10)
    for moment in (
        ten_minutes_ago,
        ten_minutes_ago.replace(tzinfo=None),
        ten_minutes_ago.astimezone(timezone(timedelta(hours=-5))),
    ):
        assert 599 < seconds_since(moment) < 660
