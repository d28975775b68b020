from __future__ import annotations

from core.models.agent import Agent
from core.storage.repositories.base import OrgScopedRepository


class AgentRepository(OrgScopedRepository[Agent]):
    collection_name = "agents"
    model = Agent

    async def enabled(self, org_id: str) -> list[Agent]:
        return await self.list(org_id, {"enabled": True}, sort=[("created_at", 1)])

    async def by_name(self, org_id: str, name: str) -> Agent | None:
        found = await self.list(org_id, {"name": name}, limit=1)
        return found[0] if found else None
