"""Base for tenant-scoped repositories.

Every public method takes `org_id` first and every query goes through `_scope`, which refuses
an empty org id, so a caller cannot read across tenants by forgetting (or guessing) an id.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from core.errors import AlreadyExists, InvalidInput
from core.models.base import OrgDocument
from core.storage.codec import CodecCollection

M = TypeVar("M", bound=OrgDocument)


def scope(org_id: str, query: dict[str, Any] | None = None) -> dict[str, Any]:
    if not org_id or not isinstance(org_id, str):
        raise InvalidInput("org_id is required for every tenant query")
    return {**(query or {}), "org_id": org_id}


class OrgScopedRepository(Generic[M]):
    collection_name: str
    model: type[M]

    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = CodecCollection(db[self.collection_name])

    async def insert(self, org_id: str, item: M) -> M:
        if item.org_id != org_id:
            raise InvalidInput("document belongs to another organisation")
        try:
            await self.collection.insert_one(item.to_mongo())
        except DuplicateKeyError as exc:
            raise AlreadyExists(f"{self.collection_name}: duplicate key", detail=str(exc)) from None
        return item

    async def get(self, org_id: str, item_id: str) -> M | None:
        return self.model.from_mongo(await self.collection.find_one(scope(org_id, {"_id": item_id})))

    async def list(self, org_id: str, query: dict[str, Any] | None = None, *,
                   sort: list[tuple[str, int]] | None = None, limit: int = 0) -> list[M]:
        cursor = self.collection.find(scope(org_id, query), sort=sort, limit=limit)
        return [self.model.model_validate(doc) async for doc in cursor]

    async def update(self, org_id: str, item_id: str, changes: dict[str, Any]) -> M | None:
        doc = await self.collection.find_one_and_update(
            scope(org_id, {"_id": item_id}), {"$set": changes}, return_document=ReturnDocument.AFTER
        )
        return self.model.from_mongo(doc)

    async def delete(self, org_id: str, item_id: str) -> bool:
        result = await self.collection.delete_one(scope(org_id, {"_id": item_id}))
        return result.deleted_count == 1

    async def count(self, org_id: str, query: dict[str, Any] | None = None) -> int:
        return await self.collection.count_documents(scope(org_id, query))
