"""One record per (notification, operator): the claim that makes delivery at-most-once."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from core.clock import utcnow
from core.storage.codec import CodecCollection
from core.storage.repositories.base import scope


class DeliveryRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = CodecCollection(db["notification_deliveries"])
        self.outbox = CodecCollection(db["notifications"])

    @staticmethod
    def key(notification_id: str, operator_id: str) -> str:
        return f"{notification_id}:{operator_id}"

    async def claim(self, org_id: str, notification_id: str, operator_id: str, max_attempts: int) -> bool:
        """True for the one caller that may send now: the first, or a retry after a definite
        failure while attempts remain. Never after a send whose outcome is unknown."""
        key = self.key(notification_id, operator_id)
        try:
            await self.collection.insert_one({"_id": key, "org_id": org_id, "notification_id": notification_id,
                                              "operator_id": operator_id, "status": "sending", "attempts": 1,
                                              "updated_at": utcnow()})
            return True
        except DuplicateKeyError:
            pass
        doc = await self.collection.find_one(scope(org_id, {"_id": key}))
        if not doc or doc["status"] != "failed" or doc["attempts"] >= max_attempts:
            return False
        res = await self.collection.update_one(
            {"_id": key, "status": "failed", "attempts": doc["attempts"]},
            {"$set": {"status": "sending", "updated_at": utcnow()}, "$inc": {"attempts": 1}})
        return res.modified_count == 1

    async def finish(self, org_id: str, notification_id: str, operator_id: str, status: str,
                     detail: str | None = None) -> None:
        await self.collection.update_one({"_id": self.key(notification_id, operator_id)},
                                         {"$set": {"status": status, "detail": detail, "updated_at": utcnow()}})

    async def for_notification(self, org_id: str, notification_id: str) -> list[dict[str, Any]]:
        return [d async for d in self.collection.find(scope(org_id, {"notification_id": notification_id}))]

    async def orgs_with_pending(self) -> list[str]:
        """Organisations with undelivered notifications: the delivery loop's one global read."""
        return sorted(await self.outbox.distinct("org_id", {"status": "pending"}))
