"""Working hours as operators type them: `1-5 09:00-18:00, 6 10:00-14:00 Europe/Madrid`
(1 = Monday ... 7 = Sunday; a trailing IANA timezone is optional), or `24/7`."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.agents.errors import AgentFieldInvalid
from core.models.agent import WorkingHours

_PART = re.compile(r"^([1-7])(?:-([1-7]))?\s+([0-2]\d):([0-5]\d)-([0-2]\d):([0-5]\d)$")
ALWAYS = ("24/7", "always", "-")


def parse_hours(text: str, default_timezone: str | None = None) -> WorkingHours:
    """Without a typed zone (and no `default_timezone`), the hours are read in the Kommo
    account's own timezone when they are checked."""
    raw = " ".join((text or "").split())
    if raw.lower() in ALWAYS:
        return WorkingHours(timezone=default_timezone)
    timezone = default_timezone
    head, _, last = raw.rpartition(" ")
    if "/" in last or last.upper() == "UTC":
        try:
            ZoneInfo(last)
        except (ZoneInfoNotFoundError, ValueError):
            raise AgentFieldInvalid("timezone_invalid", f"unknown timezone {last!r}", value=last) from None
        timezone, raw = last, head
    days: dict[int, tuple[str, str]] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        m = _PART.match(part)
        if not m:
            raise AgentFieldInvalid("hours_invalid", f"cannot read working hours {part!r}", value=part)
        first, last_day = int(m.group(1)), int(m.group(2) or m.group(1))
        start, end = f"{m.group(3)}:{m.group(4)}", f"{m.group(5)}:{m.group(6)}"
        if first > last_day or not ("00:00" <= start < end <= "24:00"):
            raise AgentFieldInvalid("hours_invalid", f"cannot read working hours {part!r}", value=part)
        for day in range(first, last_day + 1):
            days[day - 1] = (start, end)
    if not days:
        raise AgentFieldInvalid("hours_invalid", "no working hours given", value=raw)
    return WorkingHours(timezone=timezone, days=days)


def format_hours(hours: WorkingHours) -> str:
    """The inverse of `parse_hours` (consecutive days with equal hours joined)."""
    if not hours.days:
        return "24/7"
    parts, items = [], sorted(hours.days.items())
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1][0] == items[j][0] + 1 and items[j + 1][1] == items[i][1]:
            j += 1
        days = f"{items[i][0] + 1}" if i == j else f"{items[i][0] + 1}-{items[j][0] + 1}"
        parts.append(f"{days} {items[i][1][0]}-{items[i][1][1]}")
        i = j + 1
    return ", ".join(parts) + (f" {hours.timezone}" if hours.timezone else "")
