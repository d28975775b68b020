"""Notifications outbox: core writes alerts for an org's admins; the Telegram console delivers
them (and the CLI can list them) so core never talks to Telegram itself."""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from core.clock import utcnow
from core.ids import new_id
from core.storage.codec import CodecCollection
from core.storage.repositories.base import scope


class NotificationOutbox:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = CodecCollection(db["notifications"])

    async def publish(self, org_id: str, kind: str, *, audience: str = "admins",
                      dedupe_key: str | None = None, **params: Any) -> str:
        """`kind` is a stable code the console translates; `params` fill its message."""
        doc = {"_id": dedupe_key and f"{org_id}:{dedupe_key}" or new_id("ntf"), "org_id": org_id,
               "kind": kind, "audience": audience, "params": params, "status": "pending",
               "created_at": utcnow()}
        await self.collection.update_one({"_id": doc["_id"]}, {"$setOnInsert": doc}, upsert=True)
        return doc["_id"]

    async def pending(self, org_id: str, limit: int = 50) -> list[dict[str, Any]]:
        cursor = self.collection.find(scope(org_id, {"status": "pending"}), sort=[("created_at", 1)], limit=limit)
        return [d async for d in cursor]

    async def mark_delivered(self, org_id: str, notification_id: str) -> bool:
        doc = await self.collection.find_one_and_update(
            scope(org_id, {"_id": notification_id, "status": "pending"}),
            {"$set": {"status": "delivered", "delivered_at": utcnow()}},
            return_document=ReturnDocument.AFTER,
        )
        return doc is not None
