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

    async def talked(self, period: Period) -> dict[tuple[str, str], set[int]]:
        """The distinct leads each (org, agent) finished a turn with: one `$group` by the
        events' `lead_key` ("org|agent|lead") over the period."""
        pipeline = [{"$match": period.match(kind="turn", lead_key={"$gt": ""})}, {"$group": {"_id": "$lead_key"}}]
        found: dict[tuple[str, str], set[int]] = {}
        for row in await (await self.events.aggregate(pipeline)).to_list():
            org_id, _, rest = str(row["_id"]).partition("|")
            agent_id, _, lead_text = rest.rpartition("|")
            lead = _lead_key(lead_text)
            if org_id and agent_id and lead:
                found.setdefault((org_id, agent_id), set()).add(lead)
        return found

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
        usage = await self.usage.by_org_agent(period)
        talked = await self.talked(period)
        rows = []
        for (org_id, agent_id), row in sorted(usage.items()):
            if not agent_id:
                continue  # ingestion and other calls no agent made
            leads = talked.get((org_id, agent_id), set())
            moved, won = await self.status_changes(period, org_id, leads)
            cost = row["cost_nano"]
            rows.append({
                "org_id": org_id, "agent_id": agent_id, "replies": row["replies"], "turns": row["turns"],
                "handoffs": row["handoffs"], "cost_nano": cost, "total_tokens": row["total_tokens"],
                "leads_talked": len(leads), "leads_moved": len(moved), "deals_won": len(won),
                "cost_per_reply_nano": _ratio(cost, row["replies"]),
                "cost_per_lead_moved_nano": _ratio(cost, len(moved)),
                "cost_per_deal_won_nano": _ratio(cost, len(won)),
            })
        return rows
