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


def is_within_hours(hours: WorkingHours, now: datetime) -> bool:
    """No days configured means always on; a day missing from the map is a day off."""
    if not hours.days:
        return True
    try:
        local = now.astimezone(ZoneInfo(hours.timezone))
    except ZoneInfoNotFoundError:
        raise InvalidInput(f"unknown time zone {hours.timezone!r}") from None
    window = hours.days.get(local.weekday())
    if window is None:
        return False
    start, end = _parse(window[0]), _parse(window[1])
    current = local.time()
    if start <= end:
        return start <= current < end
    return current >= start or current < end  # overnight window, e.g. 20:00-02:00
