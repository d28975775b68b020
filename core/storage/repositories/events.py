from __future__ import annotations

import hashlib
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from core.clock import aware, utcnow
from core.errors import InvalidInput
from core.models.events import ActionRecord, ActionState, EventStatus, WebhookEvent
from core.storage.repositories.base import OrgScopedRepository, scope

_DUPLICATE_KEY = 11000


class WebhookEventRepository(OrgScopedRepository[WebhookEvent]):
    collection_name = "webhook_events"
    model = WebhookEvent

    async def insert_new(self, events: list[WebhookEvent]) -> list[WebhookEvent]:
        """Insert a batch (events of any orgs), skipping duplicates by (org_id, dedupe_key).

        Returns the events that were new. One `insert_many` per batch is what lets intake
        group-commit concurrent webhook requests. (Not in a transaction, although nx-27017 would
        write a batch faster so: its transactions live on the one SQLite connection every client
        shares, so other clients' writes land inside them, and a client that dies before
        committing leaves the transaction open. See docs/ARCHITECTURE.md.)
        """
        if not events:
            return []
        try:
            await self.collection.insert_many_stored([e.to_mongo() for e in events], ordered=False)
            return list(events)
        except BulkWriteError as exc:
            dup_idx = {err["index"] for err in exc.details.get("writeErrors", [])
                       if err.get("code") == _DUPLICATE_KEY}
            other = [err for err in exc.details.get("writeErrors", []) if err.get("code") != _DUPLICATE_KEY]
            if other:
                raise
            return [e for i, e in enumerate(events) if i not in dup_idx]

    async def set_status(self, org_id: str, event_id: str, status: EventStatus,
                         error: str | None = None) -> None:
        await self.collection.update_one(
            scope(org_id, {"_id": event_id}), {"$set": {"status": status, "error": error}}
        )

    async def release_claim(self, org_id: str, event_id: str) -> None:
        """Give back a claim that did no work (the organisation was busy): not an attempt."""
        await self.collection.update_one(scope(org_id, {"_id": event_id}),
                                         {"$set": {"status": EventStatus.QUEUED}, "$inc": {"attempts": -1}})

    async def note_error(self, org_id: str, event_id: str, error: str) -> None:
        """The last failure of an event still being retried (what its park reason will say)."""
        await self.collection.update_one(scope(org_id, {"_id": event_id}), {"$set": {"error": error[:500]}})

    async def claim(self, org_id: str, event_id: str) -> WebhookEvent | None:
        """Mark an event as being processed and count the attempt."""
        doc = await self.collection.find_one_and_update(
            scope(org_id, {"_id": event_id, "status": {"$in": [EventStatus.RECEIVED, EventStatus.QUEUED,
                                                               EventStatus.PROCESSING]}}),
            {"$set": {"status": EventStatus.PROCESSING, "claimed_at": utcnow()}, "$inc": {"attempts": 1}},
            return_document=ReturnDocument.AFTER,
        )
        return WebhookEvent.from_mongo(doc)


class ActionJournal(OrgScopedRepository[ActionRecord]):
    """agent_actions: the audit log and the exactly-once journal of side effects."""

    collection_name = "agent_actions"
    model = ActionRecord

    async def begin(self, org_id: str, record: ActionRecord) -> tuple[ActionRecord, bool]:
        """Claim an idempotency key. Returns (record, created); when not created the existing
        record is returned so the caller can see whether it was already sent. One insert in the
        usual case; the unique (org_id, idempotency_key) index arbitrates races."""
        if record.org_id != org_id:
            raise InvalidInput("document belongs to another organisation")
        try:
            await self.collection.insert_one(record.to_mongo())
            return record, True
        except DuplicateKeyError:
            existing = await self.by_key(org_id, record.idempotency_key)
            assert existing is not None
            return existing, False

    async def by_key(self, org_id: str, key: str) -> ActionRecord | None:
        return ActionRecord.from_mongo(await self.collection.find_one(scope(org_id, {"idempotency_key": key})))

    async def sent_for_lead(self, org_id: str, lead_id: int, since) -> list[ActionRecord]:
        """What we wrote on a lead since `since`, newest first: how a webhook about that lead is
        told apart from a human's doing (our own write echoed back)."""
        cursor = self.collection.find(scope(org_id, {"lead_id": int(lead_id)}), sort=[("updated_at", -1)], limit=50)
        found = [ActionRecord.model_validate(doc) async for doc in cursor]
        return [r for r in found if r.state == ActionState.SENT and aware(r.updated_at) >= since]

    # The updates below address the record by `_id`, which every MongoDB-compatible server
    # looks up by index; nx-27017 (the embedded default) scans the whole collection for an
    # update filtered by any other field, which made each turn slower as the journal grew.
    async def reclaim(self, org_id: str, record_id: str, seen_updated_at) -> bool:
        """Take over a stale SENDING record; only one redelivery wins (compare on updated_at)."""
        res = await self.collection.update_one(
            scope(org_id, {"_id": record_id, "state": ActionState.SENDING, "updated_at": seen_updated_at}),
            {"$set": {"updated_at": utcnow()}},
        )
        return res.modified_count == 1

    async def restart(self, org_id: str, record_id: str, from_states: list[ActionState]) -> bool:
        """Move a PLANNED/FAILED record back to SENDING for a real attempt; one caller wins."""
        res = await self.collection.update_one(
            scope(org_id, {"_id": record_id, "state": {"$in": from_states}}),
            {"$set": {"state": ActionState.SENDING, "dry_run": False, "error": None, "updated_at": utcnow()}},
        )
        return res.modified_count == 1

    async def finish(self, org_id: str, record_id: str, state: ActionState, *, error: str | None = None,
                     result: dict[str, Any] | None = None) -> None:
        await self.collection.update_one(
            scope(org_id, {"_id": record_id}),
            {"$set": {"state": state, "error": error, "result": result or {}, "updated_at": utcnow()}},
        )

    async def finish_and_get(self, org_id: str, record_id: str, state: ActionState, *,
                             result: dict[str, Any] | None = None) -> ActionRecord | None:
        """`finish` and read back in one round trip."""
        doc = await self.collection.find_one_and_update(
            scope(org_id, {"_id": record_id}),
            {"$set": {"state": state, "error": None, "result": result or {}, "updated_at": utcnow()}},
            return_document=ReturnDocument.AFTER,
        )
        return ActionRecord.from_mongo(doc)


class WebhookRejectionRepository:
    """webhook_rejections: hook requests refused as malformed, one record per distinct body and
    reason (a sender retrying the same bad body counts up instead of piling up records)."""

    collection_name = "webhook_rejections"
    BODY_EXCERPT = 2048

    def __init__(self, db) -> None:
        self.collection = db[self.collection_name]

    async def record(self, org_id: str, *, source: str, reason: str, body: bytes, content_type: str) -> str:
        digest = hashlib.sha256(body + b"\x00" + reason.encode()).hexdigest()[:32]
        record_id = f"{scope(org_id)['org_id']}:{digest}"
        now = utcnow()
        await self.collection.update_one(
            {"_id": record_id},
            {"$set": {"org_id": org_id, "source": source, "reason": reason[:300], "last_at": now,
                      "content_type": content_type[:100], "size": len(body),
                      "body": body[: self.BODY_EXCERPT].decode("utf-8", errors="replace")},
             "$inc": {"count": 1}},
            upsert=True)
        return record_id

    async def list(self, org_id: str, limit: int = 100) -> list[dict[str, Any]]:
        return [doc async for doc in self.collection.find(scope(org_id), sort=[("last_at", -1)], limit=limit)]
