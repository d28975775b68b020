from __future__ import annotations

from typing import Any

from core.clock import utcnow
from core.models.knowledge import KnowledgeSource, SourceStatus
from core.storage.repositories.base import OrgScopedRepository, scope


class KnowledgeSourceRepository(OrgScopedRepository[KnowledgeSource]):
    collection_name = "knowledge_sources"
    model = KnowledgeSource

    async def for_agent(self, org_id: str, agent_id: str) -> list[KnowledgeSource]:
        return await self.list(org_id, {"agent_id": agent_id}, sort=[("created_at", 1)])

    async def set_status(self, org_id: str, source_id: str, status: SourceStatus, **changes: Any) -> None:
        await self.collection.update_one(
            scope(org_id, {"_id": source_id}),
            {"$set": {"status": status, "updated_at": utcnow(), **changes}},
        )

    async def set_progress(self, org_id: str, source_id: str, done: int, total: int, *,
                           eta_s: float | None = None) -> None:
        await self.collection.update_one(
            scope(org_id, {"_id": source_id}),
            {"$set": {"chunks_done": done, "chunks_total": total, "eta_s": eta_s, "updated_at": utcnow()}},
        )
