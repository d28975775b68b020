from __future__ import annotations

from datetime import UTC
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

    # -- the indexing lease -------------------------------------------------------------------
    async def claim(self, org_id: str, source_id: str, owner: str, stale_s: float) -> KnowledgeSource | None:
        """Take the source's indexing lease for `owner`; None while another owner's heartbeat is
        fresh (a redelivered task must not index the same generation twice at once)."""
        doc = await self.get(org_id, source_id)
        if doc is None:
            return None
        if doc.lease_owner and doc.lease_owner != owner and doc.in_progress and not lease_is_stale(doc, stale_s):
            return None
        now = utcnow()
        result = await self.collection.update_one(
            scope(org_id, {"_id": source_id, **_seq(doc.lease_seq)}),
            {"$set": {"lease_owner": owner, "heartbeat_at": now, "cancel_requested": False},
             "$inc": {"lease_seq": 1}})
        if result.matched_count != 1:
            return None  # someone else claimed it between the read and the write
        return doc.model_copy(update={"lease_owner": owner, "lease_seq": doc.lease_seq + 1, "heartbeat_at": now})

    async def heartbeat(self, org_id: str, source_id: str, owner: str) -> KnowledgeSource | None:
        """Renew the lease; the source as stored, or None when `owner` no longer holds it."""
        result = await self.collection.update_one(scope(org_id, {"_id": source_id, "lease_owner": owner}),
                                                  {"$set": {"heartbeat_at": utcnow()}})
        if result.matched_count != 1:
            return None
        return await self.get(org_id, source_id)

    async def release(self, org_id: str, source_id: str, owner: str) -> None:
        await self.collection.update_one(scope(org_id, {"_id": source_id, "lease_owner": owner}),
                                         {"$set": {"lease_owner": ""}})

    async def request_cancel(self, org_id: str, source_id: str) -> None:
        await self.collection.update_one(scope(org_id, {"_id": source_id}), {"$set": {"cancel_requested": True}})

    async def in_progress_all_orgs(self) -> list[KnowledgeSource]:
        """Sources being parsed or embedded, in every organisation (the orphan sweep)."""
        found: list[KnowledgeSource] = []
        for status in (SourceStatus.PARSING, SourceStatus.EMBEDDING):  # equality per status (nx-27017)
            found += [self.model.from_mongo(d) async for d in self.collection.find({"status": status.value})]
        return found

    async def fail_if_unchanged(self, source: KnowledgeSource, reason: str) -> bool:
        """Mark an orphaned source failed unless its lease moved since it was read."""
        result = await self.collection.update_one(
            scope(source.org_id, {"_id": source.id, **_seq(source.lease_seq), "status": source.status.value}),
            {"$set": {"status": SourceStatus.FAILED.value, "error": reason, "lease_owner": "",
                      "updated_at": utcnow()}})
        return result.matched_count == 1


def _seq(seq: int) -> dict[str, Any]:
    # Sources stored before the lease existed have no `lease_seq` (and an equality never matches
    # a missing field).
    return {"$or": [{"lease_seq": 0}, {"lease_seq": {"$exists": False}}]} if seq == 0 else {"lease_seq": seq}


def lease_is_stale(doc: KnowledgeSource, stale_s: float) -> bool:
    beat = doc.heartbeat_at or doc.updated_at
    if beat is None:
        return True
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=UTC)
    return (utcnow() - beat).total_seconds() > stale_s
