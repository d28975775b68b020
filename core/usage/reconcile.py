"""The nightly reconcile: make the roll-ups of the last closed days (and a month just closed)
equal their events, for every organisation that has usage then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.logging import get_logger
from core.usage.repository import UsageRepository

log = get_logger(__name__)


async def reconcile_closed_days(usage: UsageRepository, now: datetime, days: int = 2) -> dict[str, int]:
    """Check the `days` days before today (UTC); returns the roll-ups changed per org. Today is
    left alone: its writers are still adding to it, and the next night closes it."""
    today = now.astimezone(UTC).date()
    closed = [(today - timedelta(days=i)).isoformat() for i in range(days, 0, -1)]
    changed: dict[str, int] = {}
    for org_id in await usage.orgs_with_usage(closed[0], closed[-1]):
        count = 0
        for day in closed:
            count += await usage.reconcile_day(org_id, day)
        months = sorted({d[:7] for d in closed if d[:7] < today.isoformat()[:7]})
        for month in months:  # a month that ended: its document is set from its events outright
            count += int(await usage.reconcile_month(org_id, month))
        changed[org_id] = count
    if any(changed.values()):
        log.warning("usage_rollups_repaired", changed=changed)
    return changed
