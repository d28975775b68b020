"""The AsyncMongoClient factory. One client per process (per event loop)."""

from __future__ import annotations

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from core.config import MongoSettings


def create_mongo_client(url: str, settings: MongoSettings | None = None) -> AsyncMongoClient:
    timeout = settings.server_selection_timeout_ms if settings else 5000
    return AsyncMongoClient(
        url,
        tz_aware=True,
        serverSelectionTimeoutMS=timeout,
        connectTimeoutMS=timeout,
        # nx-27017 has no replica set; retryable writes need one on a real server.
        retryWrites=False,
        appname="kommo-agent",
    )


def database(client: AsyncMongoClient, name: str) -> AsyncDatabase:
    return client[name]


async def ping(client: AsyncMongoClient) -> None:
    await client.admin.command("ping")
