from __future__ import annotations

from typing import Any

from core.clock import utcnow
from core.models.knowledge import KnowledgeSource, SourceStatus, UsageEvent
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

    async def set_progress(self, org_id: str, source_id: str, done: int, total: int) -> None:
        await self.collection.update_one(
            scope(org_id, {"_id": source_id}),
            {"$set": {"chunks_done": done, "chunks_total": total, "updated_at": utcnow()}},
        )


class UsageRepository(OrgScopedRepository[UsageEvent]):
    collection_name = "usage_events"
    model = UsageEvent

    async def record(self, org_id: str, event: UsageEvent) -> None:
        await self.insert(org_id, event)

    async def totals_by_model(self, org_id: str, day_from: str, day_to: str) -> dict[str, dict[str, int]]:
        """Token totals per model over a day range. Uses only pipeline stages verified on the
        embedded server (string-range $match, $group by one field path)."""
        pipeline = [
            {"$match": scope(org_id, {"day": {"$gte": day_from, "$lte": day_to}})},
            {"$group": {"_id": "$model", "prompt": {"$sum": "$prompt_tokens"},
                        "completion": {"$sum": "$completion_tokens"}, "calls": {"$sum": 1}}},
        ]
        cursor = await self.collection.aggregate(pipeline)
        return {row["_id"]: {"prompt": row["prompt"], "completion": row["completion"], "calls": row["calls"]}
                for row in await cursor.to_list()}
