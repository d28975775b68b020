"""The console's usage summary of one organisation: today, the last 7 and 30 days (replies,
tokens, cost, outcomes, per agent), and the 30-day daily series its chart is drawn from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from core.reports.outcomes import OutcomesReadModel
from core.reports.usage import Period, UsageReadModel

WINDOWS = (("today", 1), ("week", 7), ("month", 30))


@dataclass(frozen=True)
class UsageSummary:
    org_id: str
    windows: dict[str, dict[str, Any]]  # today | week | month -> figures
    agents: list[dict[str, Any]]  # the 30 days, per agent
    daily: list[dict[str, Any]]  # the 30 days, one row per day (zeros included)


async def usage_summary(db: AsyncDatabase, org_id: str, today: date) -> UsageSummary:
    usage, outcomes = UsageReadModel(db), OutcomesReadModel(db)
    windows = {}
    agents: list[dict[str, Any]] = []
    daily: list[dict[str, Any]] = []
    for name, days in WINDOWS:
        period = Period((today - timedelta(days=days - 1)).isoformat(), today.isoformat(), org_id)
        totals = await usage.totals(period)
        rows = await outcomes.per_agent(period)
        windows[name] = {**totals, **{k: sum(r[k] for r in rows) for k in ("leads_talked", "leads_moved", "deals_won")}}
        if name == "month":
            agents = rows
            by_day = await usage.by(period, "day")
            days_list = [(today - timedelta(days=days - 1 - i)).isoformat() for i in range(days)]
            daily = [{"day": d, "replies": by_day.get(d, {}).get("replies", 0),
                      "cost_nano": by_day.get(d, {}).get("cost_nano", 0),
                      "total_tokens": by_day.get(d, {}).get("total_tokens", 0)} for d in days_list]
    return UsageSummary(org_id=org_id, windows=windows, agents=agents, daily=daily)
