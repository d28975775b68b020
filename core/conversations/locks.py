"""One turn per conversation at a time, across every worker process (a Redis lock).

The lock is short-lived and renewed while the turn runs: a worker killed mid-turn releases the
conversation within `hold_s`, so its redelivered task does not wait for a long expiry. The lock
only avoids duplicate work; exactly-once rests on the saved plan and the action journal.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.exceptions import LockError, RedisError

from core.errors import KommoAgentError
from core.logging import get_logger

log = get_logger(__name__)


class ConversationBusy(KommoAgentError):
    """Another worker holds this conversation's turn; the caller retries later."""

    code = "conversation_busy"


async def _renew(lock, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await lock.reacquire()
        except (LockError, RedisError) as exc:
            log.warning("conversation_lock_lost", error=str(exc))
            return


@asynccontextmanager
async def conversation_lock(redis: aioredis.Redis, org_id: str, conversation_id: str, *,
                            hold_s: float = 20.0, wait_s: float = 10.0):
    lock = redis.lock(f"lock:conv:{org_id}:{conversation_id}", timeout=hold_s, blocking_timeout=wait_s)
    if not await lock.acquire():
        raise ConversationBusy("conversation is busy", conversation_id=conversation_id)
    renewer = asyncio.create_task(_renew(lock, hold_s / 3))
    try:
        yield
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        try:
            await lock.release()
        except (LockError, RedisError):
            pass  # expired or Redis restarted: the journal keeps the effects exactly-once anyway
