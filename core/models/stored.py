"""Datetimes are stored as fixed-width ISO-8601 UTC strings, not BSON dates.

Why: nx-27017 (the embedded server) stores a datetime written through `$set` as a string in its
own format, while an inserted one stays a date; comparisons and sorts over such a field then
silently mix types (seen on 0.8.1, see docs/ARCHITECTURE.md). Fixed-width strings
(`2026-11-25T16:36:00.595000Z`) compare and sort chronologically on both nx-27017 and a real
MongoDB, and pydantic reads them back as aware datetimes.

`core.storage.codec.CodecCollection` applies the conversion to every document, filter, update
and pipeline that goes through it, so repositories cannot forget it; models use it for their
own stored form (`Document.to_mongo`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def iso(ts: datetime) -> str:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_db(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {k: to_db(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_db(v) for v in value]
    return value
