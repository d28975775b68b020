"""Uploaded files in GridFS, owned by an organisation (the owner is checked on every read)."""

from __future__ import annotations

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo.asynchronous.database import AsyncDatabase

from core.errors import NotFound


class FileStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.bucket = AsyncGridFSBucket(db, bucket_name="uploads")
        self.files = db["uploads.files"]

    async def put(self, org_id: str, filename: str, data: bytes, content_type: str | None = None) -> str:
        file_id = await self.bucket.upload_from_stream(
            filename, data, metadata={"org_id": org_id, "content_type": content_type}
        )
        return str(file_id)

    async def get(self, org_id: str, file_id: str) -> bytes:
        oid = self._oid(file_id)
        if await self.files.find_one({"_id": oid, "metadata.org_id": org_id}) is None:
            raise NotFound("file not found", file_id=file_id)
        stream = await self.bucket.open_download_stream(oid)
        return await stream.read()

    async def delete(self, org_id: str, file_id: str) -> None:
        oid = self._oid(file_id)
        if await self.files.find_one({"_id": oid, "metadata.org_id": org_id}) is None:
            raise NotFound("file not found", file_id=file_id)
        try:
            await self.bucket.delete(oid)
        except NoFile:
            pass

    @staticmethod
    def _oid(file_id: str) -> ObjectId:
        try:
            return ObjectId(file_id)
        except (InvalidId, TypeError):
            raise NotFound("file not found", file_id=file_id) from None
