from __future__ import annotations

from typing import Any

from core.ids import new_id
from core.models.conversation import Conversation, Message
from core.storage.repositories.base import OrgScopedRepository, scope


class ConversationRepository(OrgScopedRepository[Conversation]):
    collection_name = "conversations"
    model = Conversation

    async def get_or_create(self, org_id: str, key: str, defaults: dict[str, Any]) -> Conversation:
        # update_one + upsert applies $setOnInsert on nx-27017 (find_one_and_update does not).
        fresh = Conversation(_id=new_id("conv"), org_id=org_id, conversation_key=key, **defaults)
        doc = fresh.to_mongo()
        await self.collection.update_one(
            scope(org_id, {"conversation_key": key}),
            {"$setOnInsert": {k: v for k, v in doc.items() if k not in ("org_id", "conversation_key")}},
            upsert=True,
        )
        found = await self.by_key(org_id, key)
        assert found is not None
        return found

    async def by_key(self, org_id: str, key: str) -> Conversation | None:
        return Conversation.from_mongo(await self.collection.find_one(scope(org_id, {"conversation_key": key})))

    async def inc(self, org_id: str, conversation_id: str, field: str, by: int = 1,
                  changes: dict[str, Any] | None = None) -> None:
        update: dict[str, Any] = {"$inc": {field: by}}
        if changes:
            update["$set"] = changes
        await self.collection.update_one(scope(org_id, {"_id": conversation_id}), update)


class MessageRepository(OrgScopedRepository[Message]):
    collection_name = "messages"
    model = Message

    async def recent(self, org_id: str, conversation_id: str, limit: int = 20) -> list[Message]:
        items = await self.list(org_id, {"conversation_id": conversation_id},
                                sort=[("created_at", -1)], limit=limit)
        return list(reversed(items))
