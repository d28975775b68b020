"""One runner per campaign at a time (a renewable Redis lock), so a redelivered task and a
re-enqueued one do not work the same targets side by side. It only avoids duplicate work:
exactly-once rests on the targets' states and the action journal."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.exceptions import LockError, RedisError

from core.errors import KommoAgentError

HOLD_S = 30.0


class CampaignBusy(KommoAgentError):
    code = "campaign_busy"


async def _renew(lock, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await lock.reacquire()
        except (LockError, RedisError):
            return


@asynccontextmanager
async def campaign_lock(redis: aioredis.Redis, org_id: str, campaign_id: str, *, hold_s: float = HOLD_S):
    lock = redis.lock(f"lock:campaign:{org_id}:{campaign_id}", timeout=hold_s)
    if not await lock.acquire(blocking=False):
        raise CampaignBusy("another process is running this campaign", campaign_id=campaign_id)
    renewer = asyncio.create_task(_renew(lock, hold_s / 3))
    try:
        yield
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        with contextlib.suppress(LockError, RedisError):
            await lock.release()
