"""`CodecCollection`: a collection whose documents, filters, updates and pipelines are converted to
the stored form (datetimes as fixed-width ISO strings, see core/models/stored.py) on the way in."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from core.models.stored import to_db


class CodecCollection:
    """An `AsyncCollection` whose arguments pass through `to_db`."""

    def __init__(self, collection: AsyncCollection) -> None:
        self._c = collection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._c, name)

    async def insert_one(self, document, *args, **kwargs):
        return await self._c.insert_one(to_db(document), *args, **kwargs)

    async def insert_many(self, documents, *args, **kwargs):
        return await self._c.insert_many([to_db(d) for d in documents], *args, **kwargs)

    async def insert_many_stored(self, documents, *args, **kwargs):
        """Documents already in the stored form (hot paths build them so): no second walk."""
        return await self._c.insert_many(documents, *args, **kwargs)

    async def update_one(self, filter, update, *args, **kwargs):
        return await self._c.update_one(to_db(filter), to_db(update), *args, **kwargs)

    async def update_many(self, filter, update, *args, **kwargs):
        return await self._c.update_many(to_db(filter), to_db(update), *args, **kwargs)

    async def replace_one(self, filter, replacement, *args, **kwargs):
        return await self._c.replace_one(to_db(filter), to_db(replacement), *args, **kwargs)

    async def find_one_and_update(self, filter, update, *args, **kwargs):
        return await self._c.find_one_and_update(to_db(filter), to_db(update), *args, **kwargs)

    async def find_one(self, filter=None, *args, **kwargs):
        return await self._c.find_one(to_db(filter), *args, **kwargs)

    def find(self, filter=None, *args, **kwargs):
        return self._c.find(to_db(filter), *args, **kwargs)

    async def count_documents(self, filter, *args, **kwargs):
        return await self._c.count_documents(to_db(filter), *args, **kwargs)

    async def delete_one(self, filter, *args, **kwargs):
        return await self._c.delete_one(to_db(filter), *args, **kwargs)

    async def delete_many(self, filter, *args, **kwargs):
        return await self._c.delete_many(to_db(filter), *args, **kwargs)

    async def distinct(self, key, filter=None, *args, **kwargs):
        return await self._c.distinct(key, to_db(filter), *args, **kwargs)

    async def aggregate(self, pipeline, *args, **kwargs):
        return await self._c.aggregate(to_db(pipeline), *args, **kwargs)
