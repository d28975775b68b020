"""The composition root: every client and service a process needs, built once and wired here.

Adapters (web, bot, worker, CLI) call `build_services(settings, queue=...)` on their event loop
and pass the result down. Each area's builder takes the explicit dependencies it needs and
returns its service; nothing below this module imports it (an import-linter contract in
pyproject.toml keeps it so). Areas are built on first use, so a one-off CLI command does not
load models or open the vector store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from pymongo import AsyncMongoClient

from core.config import Settings
from core.ports import TaskQueue
from core.security.keyring import Keyring, load_keyring
from core.storage import Storage
from core.storage.indexes import ensure_indexes
from core.storage.mongo import create_mongo_client
from core.usage.metering import UsageMeter
from core.usage.plans import SHIPPED_PLANS, PlanCatalog
from core.usage.pricing import SHIPPED_TABLE, PriceTable
from core.usage.quota import PlanQuota
from core.usage.repository import UsageRepository

if TYPE_CHECKING:
    from core.ai.answer.runtime import AgentRuntime
    from core.ai.knowledge import KnowledgeServices
    from core.ai.llm import LLMClient
    from core.approvals.service import ApprovalService
    from core.campaigns.service import CampaignService
    from core.conversations.engine import ConversationEngine
    from core.delivery_setup import DeliverySetupService
    from core.kommo.service import KommoService
    from core.testchat.service import TestChatService, TestTurns

T = TypeVar("T")


@dataclass
class CoreServices:
    settings: Settings
    mongo_client: AsyncMongoClient
    storage: Storage
    redis: aioredis.Redis
    keyring: Keyring
    usage: UsageRepository
    meter: UsageMeter
    prices: PriceTable
    plans: PlanCatalog
    quota: PlanQuota
    # Background work; None in a process that never enqueues (a one-off CLI command).
    queue: TaskQueue | None = None
    _areas: dict[str, Any] = field(default_factory=dict, repr=False)
    _area_locks: dict[str, asyncio.Lock] = field(default_factory=dict, repr=False)

    @classmethod
    def over(cls, settings: Settings, *, mongo_client: AsyncMongoClient, storage: Storage, redis: aioredis.Redis,
             keyring: Keyring, queue: TaskQueue | None = None) -> CoreServices:
        """Services over clients the caller already holds (tests, benchmarks)."""
        usage = UsageRepository(storage.db)
        prices, plans = load_prices(settings), load_plans(settings)
        meter = UsageMeter(usage, prices, provider=provider_name(settings.llm.base_url))
        quota = PlanQuota(storage, usage, plans, warn_ratio=settings.usage.warn_ratio)
        return cls(settings=settings, mongo_client=mongo_client, storage=storage, redis=redis, keyring=keyring,
                   usage=usage, meter=meter, prices=prices, plans=plans, quota=quota, queue=queue)

    async def _area(self, name: str, build: Callable[[], Awaitable[T]]) -> T:
        lock = self._area_locks.setdefault(name, asyncio.Lock())
        async with lock:
            if name not in self._areas:
                self._areas[name] = await build()
            return self._areas[name]

    async def kommo(self) -> KommoService:
        """The Kommo integration (client, tokens, sync, intake when there is a queue, actions)."""
        from core.kommo.service import build_kommo  # noqa: PLC0415 - areas load on first use

        async def build() -> KommoService:
            return build_kommo(self.settings.kommo, storage=self.storage, redis=self.redis, keyring=self.keyring,
                               queue=self.queue)

        return await self._area("kommo", build)

    def delivery_setup(self) -> DeliverySetupService:
        """Delivery set-up checked against the live account (CLI `kommo delivery`, the console)."""
        from core.delivery_setup import DeliverySetupService  # noqa: PLC0415 - areas load on first use

        return DeliverySetupService(storage=self.storage, kommo=self.kommo, keyring=self.keyring,
                                    global_widget_secret=self.settings.kommo.client_secret is not None)

    async def llm(self) -> LLMClient | None:
        """The process's one LLM client (replies, translation, campaigns); None without a key."""
        from core.ai.factory import build_llm  # noqa: PLC0415 - areas load on first use

        async def build() -> LLMClient | None:
            return build_llm(self.settings.llm, self.meter)

        return await self._area("llm", build)

    async def knowledge(self) -> KnowledgeServices:
        """Vector store, embedder, retriever and ingestion. In the embedded default only the
        process that owns the vector store may call this."""
        from core.ai.factory import build_translator  # noqa: PLC0415 - areas load on first use
        from core.ai.knowledge import build_knowledge  # noqa: PLC0415 - as above

        async def build() -> KnowledgeServices:
            return await build_knowledge(self.settings, self.storage, meter=self.meter, queue=self.queue,
                                         translator=build_translator(self.settings.knowledge, await self.llm()))

        return await self._area("knowledge", build)

    async def runtime(self) -> AgentRuntime:
        from core.ai.factory import build_runtime, known_secrets  # noqa: PLC0415 - areas load on first use

        async def build() -> AgentRuntime:
            return build_runtime((await self.knowledge()).retriever, catalog=self.storage.kommo_catalog,
                                 llm=await self.llm(), secrets=known_secrets(self.settings))

        return await self._area("runtime", build)

    def approvals(self) -> ApprovalService:
        from core.approvals.service import ApprovalService  # noqa: PLC0415 - areas load on first use

        return ApprovalService(self.storage, self.queue)

    def test_turns(self) -> TestTurns:
        """Test-chat turns run with this process's runtime (a worker, or a process owning the knowledge)."""
        from core.testchat.service import TestTurns  # noqa: PLC0415 - areas load on first use

        return TestTurns(self.storage, self.runtime, self.quota)

    def test_chat(self, *, in_process: bool | None = None) -> TestChatService:
        """The test chat. `in_process` None: run turns here only where this process may open the
        knowledge (a Qdrant server); else in a worker through the task queue."""
        from core.testchat.service import QueuedRunner, RuntimeRunner, TestChatService  # noqa: PLC0415

        local = bool(self.settings.qdrant.url) if in_process is None else in_process
        runner = RuntimeRunner(self.test_turns()) if local or self.queue is None else QueuedRunner(
            self.redis, self.queue, timeout_s=self.settings.telegram.test_chat_timeout_s)
        return TestChatService(self.storage, self.redis, runner, self.prices)

    def knowledge_intake(self):
        """Adding knowledge sources without opening the vector store (indexing runs in a worker)."""
        from core.ai.ingest.sources import SourceIntake  # noqa: PLC0415 - areas load on first use

        return SourceIntake(self.storage, self.settings.knowledge, self.queue)

    async def campaigns(self) -> CampaignService:
        """Campaigns over the Kommo area and the shared LLM client (no knowledge stack needed)."""
        from core.campaigns.service import build_campaigns  # noqa: PLC0415 - areas load on first use

        async def build() -> CampaignService:
            return build_campaigns(storage=self.storage, redis=self.redis, kommo=await self.kommo(),
                                   llm=await self.llm())

        return await self._area("campaigns", build)

    async def engine(self) -> ConversationEngine:
        from core.conversations.context import EngineDeps  # noqa: PLC0415 - areas load on first use
        from core.conversations.engine import ConversationEngine  # noqa: PLC0415 - as above
        from core.conversations.kommo_gateway import ActionsGateway  # noqa: PLC0415 - as above

        async def build() -> ConversationEngine:
            if self.queue is None:
                raise RuntimeError("the conversation engine needs the task queue: build_services(..., queue=...)")
            kommo = await self.kommo()
            return ConversationEngine(EngineDeps(
                storage=self.storage, redis=self.redis, queue=self.queue, runtime=await self.runtime(),
                kommo=ActionsGateway(kommo.actions, kommo.api), debounce_s=self.settings.worker.debounce_s,
                max_event_attempts=self.settings.worker.max_event_attempts,
                turns_per_org=self.settings.worker.turns_per_org, review=self.approvals(),
                salesbot_wait_s=self.settings.kommo.salesbot_wait_s, quota=self.quota, meter=self.meter))

        return await self._area("engine", build)

    async def close_areas(self) -> None:
        # Campaigns and the runtime hold nothing of their own; the LLM client closes once.
        for name in ("knowledge", "kommo", "llm"):
            area = self._areas.pop(name, None)
            if area is not None:
                await area.close()
        self._areas.clear()

    async def close(self) -> None:
        await self.close_areas()  # drains intake's group commits through the queue first
        close_queue = getattr(self.queue, "close", None)  # the Celery queue holds a broker connection
        if close_queue is not None:
            await close_queue()
        await self.redis.aclose()
        await self.mongo_client.close()


def load_prices(settings: Settings) -> PriceTable:
    u = settings.usage
    return PriceTable.from_csv(u.price_table or SHIPPED_TABLE, default_input_usd_per_1m=u.default_input_usd_per_1m,
                               default_output_usd_per_1m=u.default_output_usd_per_1m)


def load_plans(settings: Settings) -> PlanCatalog:
    return PlanCatalog.from_file(settings.usage.plans_file or SHIPPED_PLANS)


def provider_name(base_url: str) -> str:
    """The LLM provider a usage event names: the API host without "api." and the port."""
    host = urlsplit(base_url).hostname or ""
    return host.removeprefix("api.") or "unknown"


def effective_mongo_url(settings: Settings) -> str:
    return settings.mongo.url or f"mongodb://127.0.0.1:{settings.mongo.embedded_port}/"


def effective_redis_url(settings: Settings) -> str:
    return settings.redis.url or f"redis://127.0.0.1:{settings.redis.embedded_port}/0"


def redis_client(url: str) -> aioredis.Redis:
    # A blocking pool waits for a free connection under load instead of raising
    # MaxConnectionsError (webhook bursts, many concurrent turns).
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=64, timeout=10)
    return aioredis.Redis(connection_pool=pool)


async def build_services(settings: Settings, *, queue: TaskQueue | None = None, keyring: Keyring | None = None,
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
    return CoreServices.over(settings, mongo_client=client, storage=Storage.from_db(db),
                             redis=redis_client(effective_redis_url(settings)), keyring=ring, queue=queue)
