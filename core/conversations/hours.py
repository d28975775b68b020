"""Working hours of an agent (per weekday, in the agent's time zone)."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import InvalidInput
from core.models.agent import WorkingHours


def _parse(hhmm: str) -> time:
    try:
        hours, minutes = hhmm.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise InvalidInput(f"working hours must look like HH:MM, got {hhmm!r}") from None


def zone_name(hours: WorkingHours | None, account_timezone: str | None) -> str:
    """The zone working hours are read in: the one typed with them, else the Kommo account's
    own; UTC only when neither is known (an account not synced yet)."""
    return (hours.timezone if hours else None) or account_timezone or "UTC"


def is_within_hours(hours: WorkingHours, now: datetime, account_timezone: str | None = None) -> bool:
    """No days configured means always on; a day missing from the map is a day off."""
    if not hours.days:
        return True
    zone = zone_name(hours, account_timezone)
    try:
        local = now.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {zone!r}") from None
    window = hours.days.get(local.weekday())
    if window is None:
        return False
    start, end = _parse(window[0]), _parse(window[1])
    current = local.time()
    if start <= end:
        return start <= current < end
    return current >= start or current < end  # overnight window, e.g. 20:00-02:00
