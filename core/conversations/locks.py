"""One turn per conversation at a time, across every worker process (a renewable Redis lock:
a worker killed mid-turn releases the conversation within `hold_s`)."""

from __future__ import annotations

from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from core.conversations.errors import ConversationBusy
from core.locks import renewable_lock


@asynccontextmanager
async def conversation_lock(redis: aioredis.Redis, org_id: str, conversation_id: str, *,
                            hold_s: float = 20.0, wait_s: float = 10.0):
    async with renewable_lock(redis, f"lock:conv:{org_id}:{conversation_id}", hold_s=hold_s,
                              wait_s=wait_s) as acquired:
        if not acquired:
            raise ConversationBusy("conversation is busy", conversation_id=conversation_id)
        yield
