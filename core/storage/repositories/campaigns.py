"""Campaigns and their per-lead targets (see core/models/campaign.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core.clock import utcnow
from core.models.campaign import (
    OPEN_TARGET_STATES,
    Campaign,
    CampaignStatus,
    CampaignTarget,
    TargetState,
)
from core.storage.repositories.base import OrgScopedRepository, scope


class CampaignRepository(OrgScopedRepository[Campaign]):
    collection_name = "campaigns"
    model = Campaign

    async def recent(self, org_id: str, limit: int = 20) -> list[Campaign]:
        return await self.list(org_id, sort=[("created_at", -1)], limit=limit)

    async def move(self, org_id: str, campaign_id: str, to: CampaignStatus, *,
                   allowed_from: tuple[CampaignStatus, ...], reason: str | None = None,
                   extra: dict[str, Any] | None = None) -> bool:
        """Compare-and-set on the status, so a cancel and a finishing runner cannot both win."""
        changes: dict[str, Any] = {"status": to, "updated_at": utcnow(), **(extra or {})}
        if reason is not None:
            changes["status_reason"] = reason[:500]
        res = await self.collection.update_one(
            scope(org_id, {"_id": campaign_id, "status": {"$in": [s.value for s in allowed_from]}}),
            {"$set": changes})
        return res.modified_count == 1

    async def status_of(self, org_id: str, campaign_id: str) -> CampaignStatus | None:
        doc = await self.collection.find_one(scope(org_id, {"_id": campaign_id}), {"status": 1})
        return CampaignStatus(doc["status"]) if doc else None

    async def stalled(self, org_id: str, stale_after_s: float) -> list[Campaign]:
        """Draft or running campaigns without progress for `stale_after_s`."""
        cutoff = utcnow() - timedelta(seconds=stale_after_s)
        return await self.list(org_id, {"status": {"$in": [CampaignStatus.DRAFT.value, CampaignStatus.RUNNING.value]},
                                        "updated_at": {"$lte": cutoff}})


class CampaignTargetRepository(OrgScopedRepository[CampaignTarget]):
    collection_name = "campaign_targets"
    model = CampaignTarget

    async def add(self, org_id: str, target: CampaignTarget) -> None:
        """Idempotent: listing the leads again after a crash keeps existing targets as they are.
        (update_one + upsert: nx-27017 applies $setOnInsert there, not in find_one_and_update.)"""
        doc = target.to_mongo()
        await self.collection.update_one(
            scope(org_id, {"_id": target.id}),
            {"$setOnInsert": {k: v for k, v in doc.items() if k not in ("_id", "org_id")}}, upsert=True)

    async def open(self, org_id: str, campaign_id: str, limit: int) -> list[CampaignTarget]:
        return await self.list(org_id, {"campaign_id": campaign_id,
                                        "state": {"$in": [s.value for s in OPEN_TARGET_STATES]}},
                               sort=[("lead_id", 1)], limit=limit)

    async def prepare(self, org_id: str, target_id: str, text: str, personalised: bool) -> CampaignTarget | None:
        """Fix the text once; a concurrent or resumed run gets the stored text back."""
        await self.collection.update_one(
            scope(org_id, {"_id": target_id, "state": TargetState.PENDING.value}),
            {"$set": {"state": TargetState.PREPARED, "text": text, "personalised": personalised,
                      "updated_at": utcnow()}})
        return await self.get(org_id, target_id)

    async def finish(self, org_id: str, target_id: str, state: TargetState, reason: str = "") -> bool:
        res = await self.collection.update_one(
            scope(org_id, {"_id": target_id, "state": {"$in": [s.value for s in OPEN_TARGET_STATES]}}),
            {"$set": {"state": state, "reason": reason[:500], "updated_at": utcnow()}})
        return res.modified_count == 1

    async def counts(self, org_id: str, campaign_id: str) -> dict[str, int]:
        out = {}
        for state in TargetState:
            out[state.value] = await self.count(org_id, {"campaign_id": campaign_id, "state": state.value})
        return out

    async def in_state(self, org_id: str, campaign_id: str, state: TargetState, limit: int = 0) -> list[CampaignTarget]:
        return await self.list(org_id, {"campaign_id": campaign_id, "state": state.value},
                               sort=[("lead_id", 1)], limit=limit)
