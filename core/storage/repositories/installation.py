"""Facts about the installation itself, not about any tenant (e.g. "the demo was seeded")."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from core.clock import utcnow
from core.storage.codec import CodecCollection


class InstallationFlags:
    """Once-only flags of this deployment; global by nature, so named for it (no org id)."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = CodecCollection(db["installation"])

    async def claim(self, flag: str, **info) -> bool:
        """True for the one caller that sets `flag` first (a unique `_id`, so racing processes
        cannot both win)."""
        try:
            await self.collection.insert_one({"_id": flag, "at": utcnow(), **info})
        except DuplicateKeyError:
            return False
        return True

    async def get(self, flag: str) -> dict | None:
        return await self.collection.find_one({"_id": flag})

    async def release(self, flag: str) -> None:
        await self.collection.delete_one({"_id": flag})
