"""One turn per conversation at a time, across every worker process (a Redis lock)."""

from __future__ import annotations

from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.exceptions import LockError

from core.errors import KommoAgentError


class ConversationBusy(KommoAgentError):
    """Another worker holds this conversation's turn; the caller retries later."""

    code = "conversation_busy"


@asynccontextmanager
async def conversation_lock(redis: aioredis.Redis, org_id: str, conversation_id: str, *,
                            hold_s: float = 300.0, wait_s: float = 10.0):
    # `hold_s` bounds a crashed holder: a SIGKILLed worker's lock expires and the redelivered
    # task gets the turn. It must exceed the longest turn (LLM retries + Kommo backoff).
    lock = redis.lock(f"lock:conv:{org_id}:{conversation_id}", timeout=hold_s, blocking_timeout=wait_s)
    if not await lock.acquire():
        raise ConversationBusy("conversation is busy", conversation_id=conversation_id)
    try:
        yield
    finally:
        try:
            await lock.release()
        except LockError:
            pass  # expired while we worked: the journal keeps the effects exactly-once anyway
