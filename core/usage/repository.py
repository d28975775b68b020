"""`usage_events`: the metered calls of an organisation (see core/usage/model.py)."""

from __future__ import annotations

from core.storage.repositories.base import OrgScopedRepository
from core.usage.model import UsageEvent


class UsageRepository(OrgScopedRepository[UsageEvent]):
    collection_name = "usage_events"
    model = UsageEvent

    async def record(self, org_id: str, event: UsageEvent) -> None:
        await self.insert(org_id, event)
