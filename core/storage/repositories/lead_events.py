"""lead_status_events: one document per lead stage change Kommo reported (outcome reports read it)."""

from __future__ import annotations

from pymongo.errors import DuplicateKeyError

from core.models.events import LeadStatusEvent
from core.storage.repositories.base import OrgScopedRepository, scope


class LeadStatusEventRepository(OrgScopedRepository[LeadStatusEvent]):
    collection_name = "lead_status_events"
    model = LeadStatusEvent

    async def record(self, org_id: str, item: LeadStatusEvent) -> bool:
        """Store once per webhook event (by `_id`); False when it was stored already."""
        try:
            await self.insert(org_id, item)
        except Exception as exc:  # AlreadyExists wraps the DuplicateKeyError of a redelivery
            if isinstance(exc.__cause__, DuplicateKeyError) or "duplicate" in str(exc):
                return False
            raise
        return True

    async def of_days(self, org_id: str, first_day: str, last_day: str) -> list[LeadStatusEvent]:
        """Changes whose UTC day is within [first_day, last_day] ('YYYY-MM-DD'), oldest first."""
        cursor = self.collection.find(scope(org_id, {"day": {"$gte": first_day, "$lte": last_day}}),
                                      sort=[("at", 1)])
        return [LeadStatusEvent.model_validate(doc) async for doc in cursor]

    async def of_lead(self, org_id: str, lead_id: int) -> list[LeadStatusEvent]:
        return await self.list(org_id, {"lead_id": int(lead_id)}, sort=[("at", 1)])
