"""Console profiles: one per Telegram user, whatever organisations they belong to.

A person, not a tenant's document: it holds which organisation they act in, the console
language they chose and their per-organisation mutes. Looked up by Telegram user id, like
`OperatorRepository.memberships`, because that is how the console knows who is acting.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from pymongo.asynchronous.database import AsyncDatabase

from core.clock import utcnow
from core.storage.codec import CodecCollection


class ConsoleProfile(BaseModel):
    telegram_user_id: int
    language: str | None = None  # None: follow the Telegram app's language
    telegram_language: str | None = None  # as the Telegram app last reported it (for notifications)
    active_org_id: str | None = None
    muted: dict[str, list[str]] = Field(default_factory=dict)  # org id -> notification kinds
    unreachable_since: datetime | None = None  # the user blocked the bot (Telegram answered 403)


class ConsoleProfileRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = CodecCollection(db["console_profiles"])

    @staticmethod
    def _id(telegram_user_id: int) -> str:
        return f"tg:{int(telegram_user_id)}"

    async def get(self, telegram_user_id: int) -> ConsoleProfile:
        doc = await self.collection.find_one({"_id": self._id(telegram_user_id)})
        return ConsoleProfile.model_validate(doc) if doc else ConsoleProfile(telegram_user_id=telegram_user_id)

    async def set(self, telegram_user_id: int, **changes) -> None:
        # By `_id` with a plain `$set` upsert (see docs/ARCHITECTURE.md on nx-27017 upserts).
        await self.collection.update_one(
            {"_id": self._id(telegram_user_id)},
            {"$set": {"telegram_user_id": int(telegram_user_id), "updated_at": utcnow(), **changes}},
            upsert=True)

    async def set_muted(self, telegram_user_id: int, org_id: str, kinds: list[str]) -> None:
        await self.set(telegram_user_id, **{f"muted.{org_id}": sorted(set(kinds))})
