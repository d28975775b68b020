"""What sync copies from Kommo: pipelines with stages, users and custom fields.

Sync replaces the set per kind: items seen now are upserted (and un-gone), items no longer in
Kommo are marked `gone` rather than deleted, so history still resolves their names.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from core.clock import utcnow
from core.models.base import OrgDocument
from core.models.kommo import KommoField, KommoPipeline, KommoUser
from core.models.stored import to_db
from core.storage.codec import CodecCollection
from core.storage.repositories.base import scope

T = TypeVar("T", bound=OrgDocument)


class KommoCatalogRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.pipelines_col = CodecCollection(db["kommo_pipelines"])
        self.users_col = CodecCollection(db["kommo_users"])
        self.fields_col = CodecCollection(db["kommo_fields"])

    async def _replace_set(self, col, org_id: str, items: list[OrgDocument], match: dict[str, Any]) -> None:
        now = utcnow()
        ops = []
        for item in items:
            doc = {**item.to_mongo(), "gone": False, "synced_at": now}
            # bulk_write bypasses CodecCollection's argument conversion: convert here.
            ops.append(UpdateOne(scope(org_id, {"_id": doc["_id"]}), {"$set": to_db(doc)}, upsert=True))
        if ops:
            await col.bulk_write(ops, ordered=False)
        seen = [i.id for i in items]
        await col.update_many(scope(org_id, {**match, "_id": {"$nin": seen}, "gone": False}),
                              {"$set": {"gone": True, "synced_at": now}})

    async def replace_pipelines(self, org_id: str, pipelines: list[KommoPipeline]) -> None:
        # Stages deleted in Kommo: keep them in the stored pipeline, marked gone.
        for p in pipelines:
            old = await self.pipeline(org_id, p.pipeline_id)
            if old:
                live = {s.id for s in p.statuses}
                p.statuses.extend(s.model_copy(update={"gone": True}) for s in old.statuses if s.id not in live)
        await self._replace_set(self.pipelines_col, org_id, pipelines, {})

    async def replace_users(self, org_id: str, users: list[KommoUser]) -> None:
        await self._replace_set(self.users_col, org_id, users, {})

    async def replace_fields(self, org_id: str, entity: str, fields: list[KommoField]) -> None:
        await self._replace_set(self.fields_col, org_id, fields, {"entity": entity})

    async def pipelines(self, org_id: str, include_gone: bool = False) -> list[KommoPipeline]:
        q = {} if include_gone else {"gone": False}
        found = self.pipelines_col.find(scope(org_id, q), sort=[("pipeline_id", 1)])
        return [KommoPipeline.model_validate(d) async for d in found]

    async def pipeline(self, org_id: str, pipeline_id: int) -> KommoPipeline | None:
        return KommoPipeline.from_mongo(await self.pipelines_col.find_one(scope(org_id, {"pipeline_id": pipeline_id})))

    async def users(self, org_id: str, include_gone: bool = False) -> list[KommoUser]:
        q = {} if include_gone else {"gone": False}
        return [KommoUser.model_validate(d) async for d in self.users_col.find(scope(org_id, q), sort=[("user_id", 1)])]

    async def fields(self, org_id: str, entity: str, include_gone: bool = False) -> list[KommoField]:
        q: dict[str, Any] = {"entity": entity}
        if not include_gone:
            q["gone"] = False
        return [KommoField.model_validate(d) async for d in self.fields_col.find(scope(org_id, q), sort=[("field_id", 1)])]

    @staticmethod
    def pipeline_doc_id(org_id: str, pipeline_id: int) -> str:
        return f"{org_id}:{pipeline_id}"

    @staticmethod
    def user_doc_id(org_id: str, user_id: int) -> str:
        return f"{org_id}:u{user_id}"

    @staticmethod
    def field_doc_id(org_id: str, entity: str, field_id: int) -> str:
        return f"{org_id}:{entity}:{field_id}"
