"""A renewable Redis lock: held only while its holder is alive.

The holder renews it every `hold_s / 3`; a process killed while holding it releases it within
`hold_s`. Such locks only avoid duplicate work; exactly-once always rests on stored state
(turn plans, campaign targets, the action journal).
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.exceptions import LockError, RedisError

from core.logging import get_logger

log = get_logger(__name__)


async def _renew(lock, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await lock.reacquire()
        except (LockError, RedisError) as exc:
            log.warning("lock_lost", key=lock.name, error=str(exc))
            return


@asynccontextmanager
async def renewable_lock(redis: aioredis.Redis, key: str, *, hold_s: float, wait_s: float | None):
    """Yields True when acquired, False when busy (`wait_s` None = do not wait)."""
    lock = redis.lock(key, timeout=hold_s, blocking_timeout=wait_s)
    acquired = await lock.acquire(blocking=wait_s is not None)
    if not acquired:
        yield False
        return
    renewer = asyncio.create_task(_renew(lock, hold_s / 3))
    try:
        yield True
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        with contextlib.suppress(LockError, RedisError):
            await lock.release()  # expired or Redis restarted: stored state keeps effects exactly-once
