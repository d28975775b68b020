"""The core composition root: every client and service a process needs, built once.

Adapters (web, bot, worker, CLI) call `build_services(settings)` on their event loop and pass
the result down; nothing in core reads module-level clients.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from pymongo import AsyncMongoClient

from core.config import Settings
from core.security.keyring import Keyring, load_keyring
from core.storage import Storage
from core.storage.indexes import ensure_indexes
from core.storage.mongo import create_mongo_client


@dataclass
class CoreServices:
    settings: Settings
    mongo_client: AsyncMongoClient
    storage: Storage
    redis: aioredis.Redis
    keyring: Keyring

    async def close(self) -> None:
        await self.redis.aclose()
        await self.mongo_client.close()


def effective_mongo_url(settings: Settings) -> str:
    return settings.mongo.url or f"mongodb://127.0.0.1:{settings.mongo.embedded_port}/"


def effective_redis_url(settings: Settings) -> str:
    return settings.redis.url or f"redis://127.0.0.1:{settings.redis.embedded_port}/0"


async def build_services(settings: Settings, *, keyring: Keyring | None = None,
                         bootstrap_indexes: bool = True, create_key_file: bool = False) -> CoreServices:
    client = create_mongo_client(effective_mongo_url(settings), settings.mongo)
    db = client[settings.mongo.database]
    if bootstrap_indexes:
        await ensure_indexes(db)
    ring = keyring or load_keyring(
        settings.secrets.keys.get_secret_value() if settings.secrets.keys else None,
        settings.key_file,
        create=create_key_file,
    )
    return CoreServices(
        settings=settings,
        mongo_client=client,
        storage=Storage.from_db(db),
        redis=aioredis.from_url(effective_redis_url(settings)),
        keyring=ring,
    )
