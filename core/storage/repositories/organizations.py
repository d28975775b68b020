from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from core.ids import new_id
from core.models.org import Organization
from core.storage.codec import CodecCollection


class OrganizationRepository:
    """Organisations are the tenants themselves: their id is the `org_id` of everything else."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = CodecCollection(db["organizations"])

    async def create(self, name: str, language: str = "ru") -> Organization:
        org = Organization(_id=new_id("org"), name=name, language=language)
        await self.collection.insert_one(org.to_mongo())
        return org

    async def get(self, org_id: str) -> Organization | None:
        return Organization.from_mongo(await self.collection.find_one({"_id": org_id}))

    async def list_all(self) -> list[Organization]:
        return [Organization.model_validate(d) async for d in self.collection.find({}, sort=[("created_at", 1)])]

    async def update(self, org_id: str, changes: dict) -> Organization | None:
        await self.collection.update_one({"_id": org_id}, {"$set": changes})
        return await self.get(org_id)
