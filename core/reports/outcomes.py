"""Outcomes read model: what the spend bought, per agent and period.

Leads talked to are the distinct leads of the agent's finished turns (`usage_events` of kind
"turn"); leads moved forward and deals won come from `lead_status_events` (written by the Kommo
status-change intake: org_id, agent_id, lead_id, pipeline_id, old_status_id, new_status_id, won,
lost, at, day) for those leads in the period. That collection is read defensively: a missing
field, a lead id stored as text, or no collection at all count as "no outcome", never an error.
A lead moved forward is one whose status changed to another stage without being lost.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from core.reports.usage import Period, UsageReadModel

STATUS_EVENTS = "lead_status_events"


def _lead_key(value: Any) -> int | None:
    try:
        lead = int(value)
    except (TypeError, ValueError):
        return None
    return lead if lead > 0 else None


def _ratio(cost_nano: int, count: int) -> int | None:
    return cost_nano // count if count else None


class OutcomesReadModel:
    def __init__(self, db: AsyncDatabase) -> None:
        self.events = db["usage_events"]
        self.status = db[STATUS_EVENTS]
        self.usage = UsageReadModel(db)

    async def talked(self, period: Period, org_id: str, agent_id: str) -> set[int]:
        found = await self.events.distinct("lead_id", period.match(org_id=org_id, agent_id=agent_id, kind="turn"))
        return {lead for lead in map(_lead_key, found) if lead}

    async def status_changes(self, period: Period, org_id: str, leads: set[int]) -> tuple[set[int], set[int]]:
        """(moved forward, won) among `leads` in the period."""
        if not leads:
            return set(), set()
        ids: list[Any] = [*leads, *(str(lead) for lead in leads)]  # whichever type the writer stored
        moved, won = set(), set()
        query = {"day": {"$gte": period.start, "$lte": period.end}, "org_id": org_id, "lead_id": {"$in": ids}}
        projection = {"lead_id": 1, "old_status_id": 1, "new_status_id": 1, "won": 1, "lost": 1}
        async for doc in self.status.find(query, projection):
            lead = _lead_key(doc.get("lead_id"))
            if lead is None:
                continue
            if doc.get("won") is True:
                won.add(lead)
                moved.add(lead)
            elif doc.get("lost") is not True and doc.get("new_status_id") not in (None, doc.get("old_status_id")):
                moved.add(lead)
        return moved, won

    async def per_agent(self, period: Period) -> list[dict[str, Any]]:
        """One row per (org, agent) with usage in the period."""
        rows = []
        orgs = [period.org_id] if period.org_id else sorted(await self.usage.by(period, "org_id"))
        for org_id in orgs:
            scoped = Period(period.start, period.end, org_id)
            for agent_id, usage in sorted((await self.usage.by(scoped, "agent_id")).items()):
                if not agent_id:
                    continue  # ingestion and other calls no agent made
                talked = await self.talked(scoped, org_id, agent_id)
                moved, won = await self.status_changes(scoped, org_id, talked)
                cost = usage["cost_nano"]
                rows.append({
                    "org_id": org_id, "agent_id": agent_id, "replies": usage["replies"], "turns": usage["turns"],
                    "handoffs": usage["handoffs"], "cost_nano": cost, "total_tokens": usage["total_tokens"],
                    "leads_talked": len(talked), "leads_moved": len(moved), "deals_won": len(won),
                    "cost_per_reply_nano": _ratio(cost, usage["replies"]),
                    "cost_per_lead_moved_nano": _ratio(cost, len(moved)),
                    "cost_per_deal_won_nano": _ratio(cost, len(won)),
                })
        return rows
