from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from core.ids import new_id
from core.models.conversation import Conversation, Message
from core.storage.repositories.base import OrgScopedRepository, scope


class ConversationRepository(OrgScopedRepository[Conversation]):
    collection_name = "conversations"
    model = Conversation

    async def get_or_create(self, org_id: str, key: str, defaults: dict[str, Any],
                            changes: dict[str, Any] | None = None) -> Conversation:
        """The conversation of `key`, created with `defaults` if new; `changes` are set either
        way. Returns the stored document (changes applied). Two round trips either way: a read
        by key, then an update by `_id` or an insert (nx-27017, the embedded default, scans the
        whole collection for an update filtered by anything but `_id`; a find by key is indexed).
        The unique (org_id, conversation_key) index settles two first messages racing."""
        changes = changes or {}
        for _ in range(3):
            found = await self.by_key(org_id, key)
            if found is not None:
                if not changes:
                    return found
                fresh = Conversation(**{**found.model_dump(by_alias=True), **changes})
                doc = fresh.to_mongo()  # the codec's form (datetimes as strings)
                updated = await self.collection.find_one_and_update(
                    scope(org_id, {"_id": found.id}), {"$set": {k: doc[k] for k in changes}},
                    return_document=ReturnDocument.AFTER)
                if updated is not None:
                    return Conversation.from_mongo(updated)
                continue  # deleted in between: create it again
            fresh = Conversation(_id=new_id("conv"), org_id=org_id, conversation_key=key, **{**defaults, **changes})
            try:
                await self.collection.insert_one(fresh.to_mongo())
                return fresh
            except DuplicateKeyError:
                continue  # another worker created it first: read theirs and apply ours
        raise RuntimeError(f"conversation {key!r} of {org_id} kept changing under get_or_create")

    async def latest_for_lead(self, org_id: str, lead_id: int) -> Conversation | None:
        """The lead's most recently active conversation (a Salesbot widget_request names only
        the lead). Off the hot path: only salesbot-mode traffic asks."""
        return Conversation.from_mongo(await self.collection.find_one(
            scope(org_id, {"lead_id": int(lead_id)}), sort=[("last_customer_at", -1)]))

    async def consume_reply_context(self, org_id: str, conversation_id: str, return_url: str) -> bool:
        """A Salesbot return_url is single-use: forget it once used, unless a newer one already
        replaced it (read by `_id`, then a conditional update by `_id`)."""
        res = await self.collection.update_one(
            scope(org_id, {"_id": conversation_id, "reply_context.return_url": return_url}),
            {"$set": {"reply_context": {}}})
        return res.modified_count == 1

    async def by_key(self, org_id: str, key: str) -> Conversation | None:
        return Conversation.from_mongo(await self.collection.find_one(scope(org_id, {"conversation_key": key})))

    async def finish_turn(self, org_id: str, conversation_id: str, turn_id: str, *, replied: bool,
                          changes: dict[str, Any]) -> bool:
        """Counters move once per turn: the update only applies if this turn is not yet recorded."""
        update: dict[str, Any] = {"$set": {**changes, "last_turn_id": turn_id, "pending_turn_id": None,
                                           "turn_attempts": 0}}
        if replied:
            update["$inc"] = {"replies_count": 1}
        res = await self.collection.update_one(
            scope(org_id, {"_id": conversation_id, "last_turn_id": {"$ne": turn_id}}), update)
        return res.modified_count == 1


class MessageRepository(OrgScopedRepository[Message]):
    collection_name = "messages"
    model = Message

    async def recent(self, org_id: str, conversation_id: str, limit: int = 20) -> list[Message]:
        items = await self.list(org_id, {"conversation_id": conversation_id},
                                sort=[("created_at", -1)], limit=limit)
        return list(reversed(items))

    async def recent_and_unanswered(self, org_id: str, conversation_id: str,
                                    limit: int = 30) -> tuple[list[Message], list[Message]]:
        """The last `limit` messages (oldest first) and the unanswered customer messages, in one
        read when they fit in it. Unanswered messages are the tail since the last turn; only when
        the whole window is unanswered may older ones exist, and then they are read in full."""
        recent = await self.recent(org_id, conversation_id, limit=limit)
        unanswered = [m for m in recent if m.role == "customer" and m.turn_id is None]
        if len(recent) == limit and recent and recent[0].role == "customer" and recent[0].turn_id is None:
            unanswered = await self.unanswered(org_id, conversation_id)
        return recent, unanswered

    async def unanswered(self, org_id: str, conversation_id: str) -> list[Message]:
        return await self.list(org_id, {"conversation_id": conversation_id, "role": "customer", "turn_id": None},
                               sort=[("created_at", 1)])

    async def of_turn(self, org_id: str, turn_id: str) -> list[Message]:
        return await self.list(org_id, {"turn_id": turn_id, "role": "customer"}, sort=[("created_at", 1)])

    async def assign_turn(self, org_id: str, message_ids: list[str], turn_id: str) -> None:
        await self.collection.update_many(scope(org_id, {"_id": {"$in": message_ids}, "turn_id": None}),
                                          {"$set": {"turn_id": turn_id}})
