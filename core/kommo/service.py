"""`build_kommo(settings, storage=..., redis=..., keyring=..., queue=...)`: the Kommo integration for one process.

One `SessionProvider` (aiohttp client session) per process and the `RateLimiter` over the egress
budget all processes share in Redis,
shared by the API client, token refresh, Chats API, sync, OAuth, intake and actions.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from core.config import KommoSettings
from core.errors import ConfigurationError
from core.kommo.actions.lead_actions import KommoActions
from core.kommo.auth.connections import KommoConnections
from core.kommo.auth.oauth import KommoOAuth
from core.kommo.auth.tokens import TokenManager
from core.kommo.delivery.chats import ChatsClient
from core.kommo.delivery.replies import ReplySender
from core.kommo.errors import KommoNotConnected
from core.kommo.http.api import KommoApi
from core.kommo.http.client import KommoClient
from core.kommo.http.ratelimit import RateLimiter
from core.kommo.http.session import SessionProvider
from core.kommo.intake.group_commit import GroupCommitter
from core.kommo.intake.webhooks import WebhookIntake
from core.kommo.sync.catalog import KommoSync, SyncReport
from core.ports import TaskQueue
from core.security.keyring import Keyring
from core.storage import Storage


@dataclass
class KommoService:
    http: SessionProvider
    limiter: RateLimiter
    tokens: TokenManager
    client: KommoClient
    api: KommoApi
    sync: KommoSync
    connections: KommoConnections
    oauth: KommoOAuth
    actions: KommoActions
    _intake: WebhookIntake | None = None

    @property
    def intake(self) -> WebhookIntake:
        if self._intake is None:
            raise ConfigurationError("webhook intake needs a TaskQueue: build_kommo(..., queue=queue)")
        return self._intake

    async def sync_org(self, org_id: str) -> SyncReport:
        account = await self.connections.storage.kommo_accounts.for_org(org_id)
        if account is None:
            raise KommoNotConnected("this organisation has no Kommo connection")
        return await self.sync.sync_account(account)

    async def close(self) -> None:
        if self._intake is not None:
            await self._intake.committer.drain()
        await self.http.close()


def build_kommo(settings: KommoSettings, *, storage: Storage, redis: aioredis.Redis, keyring: Keyring,
                queue: TaskQueue | None = None) -> KommoService:
    http = SessionProvider(timeout_s=settings.request_timeout_s)
    # rps + burst bounds any 1-second window: keep it within Kommo's 7 requests/s.
    burst = max(1, min(settings.rate_limit_burst, 7 - int(settings.rate_limit_rps)))
    limiter = RateLimiter(redis, settings.rate_limit_rps, burst=burst, egress=settings.egress_id)
    tokens = TokenManager(settings=settings, http=http, accounts=storage.kommo_accounts, keyring=keyring,
                          redis=redis, notifications=storage.notifications)
    client = KommoClient(settings=settings, http=http, limiter=limiter, tokens=tokens,
                         accounts=storage.kommo_accounts, notifications=storage.notifications)
    api = KommoApi(client)
    sync = KommoSync(storage, api)
    connections = KommoConnections(settings=settings, storage=storage, keyring=keyring, http=http, sync=sync,
                                   api=api, limiter=limiter)
    oauth = KommoOAuth(settings=settings, redis=redis, keyring=keyring, http=http,
                       connections=connections)
    replies = ReplySender(api, ChatsClient(settings, http, limiter))
    actions = KommoActions(storage=storage, api=api, replies=replies, settings=settings,
                           stale_after_s=settings.resend_uncertain_after_s)
    intake = None
    if queue is not None:
        committer = GroupCommitter(storage.events, queue, max_batch=settings.intake_batch_max,
                                   max_delay_s=settings.intake_batch_delay_ms / 1000,
                                   max_inflight=settings.intake_commits_in_flight)
        intake = WebhookIntake(settings=settings, accounts=storage.kommo_accounts, keyring=keyring,
                               committer=committer, rejections=storage.rejections)
    return KommoService(http=http, limiter=limiter, tokens=tokens, client=client, api=api, sync=sync,
                        connections=connections, oauth=oauth, actions=actions, _intake=intake)
