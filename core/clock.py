"""Time helpers. UTC everywhere; day/month strings are stored beside datetimes because the
embedded Mongo compares strings reliably inside aggregations (see docs/ARCHITECTURE.md)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    # Mongo stores milliseconds; truncating here keeps round-trips equal in tests.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def day_key(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d")


def month_key(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m")


def aware(ts: datetime) -> datetime:
    """Datetimes read back without tzinfo are UTC (we only ever store UTC)."""
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
