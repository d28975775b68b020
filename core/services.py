"""The core composition root: every client and service a process needs, built once.

Adapters (web, bot, worker, CLI) call `build_services(settings)` on their event loop and pass
the result down; nothing in core reads module-level clients.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from pymongo import AsyncMongoClient

from core.config import Settings
from core.security.keyring import Keyring, load_keyring
from core.storage import Storage
from core.storage.indexes import ensure_indexes
from core.storage.mongo import create_mongo_client

if TYPE_CHECKING:
    from core.ai.knowledge import KnowledgeServices
    from core.ai.llm import LLMClient
    from core.ai.answer.runtime import AgentRuntime
    from core.conversations.engine import ConversationEngine
    from core.ports import TaskQueue


@dataclass
class CoreServices:
    settings: Settings
    mongo_client: AsyncMongoClient
    storage: Storage
    redis: aioredis.Redis
    keyring: Keyring
    # Areas built on first use, so a one-off CLI command does not load models or open stores.
    _areas: dict[str, Any] = field(default_factory=dict, repr=False)
    _area_locks: dict[str, asyncio.Lock] = field(default_factory=dict, repr=False)

    async def _area(self, name: str, build) -> Any:
        lock = self._area_locks.setdefault(name, asyncio.Lock())
        async with lock:
            if name not in self._areas:
                self._areas[name] = await build()
            return self._areas[name]

    async def kommo(self):
        """The Kommo integration (client, tokens, sync, intake, actions)."""
        from core.kommo.service import build_kommo  # noqa: PLC0415

        async def build():
            return build_kommo(self)

        return await self._area("kommo", build)

    async def llm(self) -> LLMClient | None:
        """The process's LLM client (shared by replies and query translation); None without a key."""
        from core.ai.factory import build_llm  # noqa: PLC0415

        async def build():
            return build_llm(self)

        return await self._area("llm", build)

    async def knowledge(self, queue: TaskQueue | None = None) -> KnowledgeServices:
        from core.ai.factory import build_translator  # noqa: PLC0415
        from core.ai.knowledge import build_knowledge  # noqa: PLC0415

        async def build():
            return await build_knowledge(self, queue=queue, translator=build_translator(self, await self.llm()))

        return await self._area("knowledge", build)

    async def runtime(self) -> AgentRuntime:
        from core.ai.factory import build_runtime  # noqa: PLC0415

        async def build():
            return build_runtime(self, (await self.knowledge()).retriever, llm=await self.llm())

        return await self._area("runtime", build)

    async def campaigns(self):
        """Campaigns over the Kommo area (no knowledge stack needed)."""
        from core.campaigns.service import build_campaigns  # noqa: PLC0415

        return await self._area("campaigns", lambda: build_campaigns(self))

    async def engine(self, queue: TaskQueue) -> ConversationEngine:
        from core.conversations.context import EngineDeps  # noqa: PLC0415
        from core.conversations.engine import ConversationEngine  # noqa: PLC0415
        from core.conversations.kommo_gateway import ActionsGateway  # noqa: PLC0415

        async def build():
            kommo = await self.kommo()
            deps = EngineDeps(storage=self.storage, redis=self.redis, queue=queue, runtime=await self.runtime(),
                              kommo=ActionsGateway(kommo.actions, kommo.api),
                              debounce_s=self.settings.worker.debounce_s)
            return ConversationEngine(deps)

        return await self._area("engine", build)

    async def close_areas(self) -> None:
        for name in ("campaigns", "runtime", "knowledge", "kommo", "llm"):
            area = self._areas.pop(name, None)
            if area is not None and hasattr(area, "close"):
                await area.close()
        self._areas.clear()

    async def close(self) -> None:
        await self.close_areas()
        await self.redis.aclose()
        await self.mongo_client.close()


def effective_mongo_url(settings: Settings) -> str:
    return settings.mongo.url or f"mongodb://127.0.0.1:{settings.mongo.embedded_port}/"


def effective_redis_url(settings: Settings) -> str:
    return settings.redis.url or f"redis://127.0.0.1:{settings.redis.embedded_port}/0"


def redis_client(url: str) -> aioredis.Redis:
    # A blocking pool waits for a free connection under load instead of raising
    # MaxConnectionsError (webhook bursts, many concurrent turns).
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=64, timeout=10)
    return aioredis.Redis(connection_pool=pool)


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
        redis=redis_client(effective_redis_url(settings)),
        keyring=ring,
    )
