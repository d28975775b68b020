"""Turn plans: what the agent decided for one turn, saved before anything is executed.

A redelivered turn re-reads its plan instead of asking the LLM again, so a worker killed between
deciding and sending still ends in exactly the reply that was decided (and paid for) once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field
from pymongo.errors import DuplicateKeyError

from core.clock import utcnow
from core.models.base import OrgDocument
from core.storage.repositories.base import OrgScopedRepository, scope


class TurnPlan(OrgDocument):
    """`_id` is the turn id (derived from the last customer message of the burst)."""

    conversation_id: str
    agent_id: str | None = None
    message_ids: list[str] = Field(default_factory=list)
    outcome: str = "planned"  # planned | done | skipped:<why> | failed
    reply_text: str = ""
    language: str = "ru"
    mode: str = ""
    # How the reply goes out, fixed when deciding (the agent's mode then): executing needs no
    # second read of the agent. Plans saved before this field fall back to the agent's mode.
    delivery_mode: str | None = None
    sources: list[dict[str, Any]] = Field(default_factory=list)
    actions: list[dict[str, Any]] = Field(default_factory=list)
    handoff: bool = False
    handoff_reason: str | None = None
    # What the outgoing-reply checks removed from the reply, and why (ungrounded prices,
    # discounts, free offers, delivery times, guarantees; claims of actions not done).
    checks: list[dict[str, Any]] = Field(default_factory=list)
    summary: str = ""
    usage: dict[str, Any] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)  # seconds per stage, for latency analysis
    finished_at: datetime | None = None


class TurnRepository(OrgScopedRepository[TurnPlan]):
    collection_name = "turns"
    model = TurnPlan

    async def save_plan(self, org_id: str, plan: TurnPlan) -> TurnPlan:
        """First writer wins: a concurrent or redelivered turn gets the stored plan back."""
        try:
            await self.collection.insert_one(plan.to_mongo())
            return plan
        except DuplicateKeyError:
            stored = await self.get(org_id, plan.id)
            assert stored is not None
            return stored

    async def finish(self, org_id: str, turn_id: str, outcome: str, timings: dict[str, float] | None = None) -> None:
        changes: dict[str, Any] = {"outcome": outcome, "finished_at": utcnow()}
        for stage, seconds in (timings or {}).items():
            changes[f"timings.{stage}"] = round(seconds, 6)
        await self.collection.update_one(scope(org_id, {"_id": turn_id}), {"$set": changes})
