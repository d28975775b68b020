"""Usage read model: totals, daily series and breakdowns from the `usage_daily` roll-ups, the
busiest conversations from the events, provider drift and re-pricing; every sum is done by the
database and only the grouped rows come back.

Pipelines use only what the embedded server computes right: `$match` on equality and string
day ranges, `$group` by one field path (composite keys are `$concat`-ed in a `$project` first),
`$sum` of field paths, `$sort`, `$limit` (see ../shared/notes/verified-stack.md); each one is
compared with an independent sum in tests/integration/test_reports.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from statistics import median
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from core.errors import InvalidInput
from core.usage.pricing import PriceTable, drift_ratio
from core.usage.repository import COUNTERS

BREAKDOWNS = ("day", "agent_id", "model", "purpose", "org_id", "month")


@dataclass(frozen=True)
class Period:
    """Inclusive UTC day range as YYYY-MM-DD strings, optionally one organisation (None: all)."""

    start: str
    end: str
    org_id: str | None = None

    def __post_init__(self) -> None:
        for day in (self.start, self.end):
            try:
                valid = isinstance(day, str) and len(day) == 10 and date.fromisoformat(day).isoformat() == day
            except ValueError:
                valid = False
            if not valid:
                raise InvalidInput(f"a report day must be a date as YYYY-MM-DD, got {day!r}")
        if self.start > self.end:
            raise InvalidInput(f"the period starts ({self.start}) after it ends ({self.end})")

    def match(self, **extra: Any) -> dict[str, Any]:
        """Events and daily roll-ups of the period: one org by its `org_day` range (selective
        through one index), every org by the day range."""
        if self.org_id:
            return {"org_day": {"$gte": f"{self.org_id}|{self.start}", "$lte": f"{self.org_id}|{self.end}"},
                    "org_id": self.org_id, **extra}
        return {"day": {"$gte": self.start, "$lte": self.end}, **extra}


def _row(doc: dict[str, Any]) -> dict[str, int]:
    return {c: int(doc.get(c) or 0) for c in COUNTERS}


def _sum_stage(fields: tuple[str, ...] = COUNTERS) -> dict[str, Any]:
    return {c: {"$sum": f"${c}"} for c in fields}


class UsageReadModel:
    def __init__(self, db: AsyncDatabase) -> None:
        self.daily = db["usage_daily"]
        self.events = db["usage_events"]

    async def _grouped(self, collection, match: dict[str, Any], key: str) -> dict[str, dict[str, int]]:
        pipeline = [{"$match": match}, {"$group": {"_id": f"${key}", **_sum_stage()}}]
        rows = await (await collection.aggregate(pipeline)).to_list()
        return {str(r["_id"] if r["_id"] is not None else ""): _row(r) for r in rows}

    async def by(self, period: Period, field: str) -> dict[str, dict[str, int]]:
        """The counters per value of `field` (day, agent_id, model, purpose, org_id, month)."""
        if field not in BREAKDOWNS:
            raise InvalidInput(f"no breakdown by {field!r}; one of {', '.join(BREAKDOWNS)}")
        return await self._grouped(self.daily, period.match(), field)

    async def by_org_agent(self, period: Period) -> dict[tuple[str, str], dict[str, int]]:
        """The counters per (org, agent): grouped by a `$concat`-ed key (compound `_id`s are not portable)."""
        pipeline = [
            {"$match": period.match()},
            {"$project": {"k": {"$concat": ["$org_id", "|", "$agent_id"]}, **dict.fromkeys(COUNTERS, 1)}},
            {"$group": {"_id": "$k", **_sum_stage()}},
        ]
        rows = await (await self.daily.aggregate(pipeline)).to_list()
        out = {}
        for r in rows:
            org_id, _, agent_id = str(r["_id"]).partition("|")
            out[(org_id, agent_id)] = _row(r)
        return out

    async def totals(self, period: Period) -> dict[str, int]:
        # Grouped by org in the database (a constant group key is not portable), summed here.
        total = dict.fromkeys(COUNTERS, 0)
        for row in (await self.by(period, "org_id")).values():
            for c in COUNTERS:
                total[c] += row[c]
        return total

    async def busiest_conversations(self, period: Period, limit: int = 10) -> list[dict[str, Any]]:
        pipeline = [
            {"$match": period.match(conversation_id={"$gt": ""})},
            {"$group": {"_id": "$conversation_id", **_sum_stage(("cost_nano", "total_tokens", "replies", "calls"))}},
            {"$sort": {"cost_nano": -1, "total_tokens": -1}},
            {"$limit": limit},
        ]
        rows = await (await self.events.aggregate(pipeline)).to_list()
        return [{"conversation_id": r["_id"], "cost_nano": int(r["cost_nano"]), "total_tokens": int(r["total_tokens"]),
                 "replies": int(r["replies"]), "calls": int(r["calls"])} for r in rows]

    async def drift(self, period: Period, threshold: float) -> list[dict[str, Any]]:
        """Per model: our price and the provider's for the calls the provider priced."""
        found = []
        for model, row in sorted((await self.by(period, "model")).items()):
            if not row["provider_calls"]:
                continue
            ratio = drift_ratio(row["provider_priced_nano"], row["provider_nano"])
            found.append({"model": model, "calls": row["provider_calls"], "table_nano": row["provider_priced_nano"],
                          "provider_nano": row["provider_nano"], "drift": ratio,
                          "flagged": ratio is not None and ratio > threshold})
        return found

    async def day_model_tokens(self, period: Period) -> dict[tuple[str, str], tuple[int, int]]:
        """Prompt and completion tokens of the metered calls per (day, model)."""
        pipeline = [
            {"$match": period.match()},
            {"$project": {"k": {"$concat": ["$day", "|", "$model"]}, "prompt_tokens": 1, "completion_tokens": 1}},
            {"$group": {"_id": "$k", **_sum_stage(("prompt_tokens", "completion_tokens"))}},
        ]
        rows = await (await self.daily.aggregate(pipeline)).to_list()
        out = {}
        for r in rows:
            day, _, model = str(r["_id"]).partition("|")
            out[(day, model)] = (int(r["prompt_tokens"]), int(r["completion_tokens"]))
        return out

    async def reprice(self, period: Period, table: PriceTable, model: str | None = None) -> dict[str, Any]:
        """What the period would have cost with `table` (and every call on `model`, if given);
        the stored events and roll-ups are left as they are."""
        per_model: dict[str, int] = {}
        unknown = 0
        for (day, used), (prompt, completion) in (await self.day_model_tokens(period)).items():
            if not used and not prompt and not completion:
                continue  # turn roll-ups carry no tokens
            priced = model or used
            cost, known = table.cost_nano(priced, day, prompt, completion)
            per_model[used] = per_model.get(used, 0) + cost
            unknown += int(not known)
        return {"table": table.name, "model": model, "cost_nano": sum(per_model.values()), "per_model": per_model,
                "unpriced_groups": unknown}


def anomalies(series: list[tuple[str, int]], *, factor: float = 3.0, window: int = 7,
              min_history: int = 3) -> list[dict[str, Any]]:
    """Days far above the trend: more than `factor` times the median of the `window` days before
    (given at least `min_history` of them)."""
    found = []
    for i, (day, value) in enumerate(series):
        history = [v for _, v in series[max(0, i - window):i]]
        if len(history) < min_history:
            continue
        baseline = median(history)
        if value > factor * baseline and value > 0:
            found.append({"day": day, "value": value, "baseline": baseline})
    return found
