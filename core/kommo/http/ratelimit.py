"""Per-account request pacing shared by every process through Redis.

A GCRA schedule: each call atomically reserves the next slot (`1/rps` apart) and sleeps until
it, with a small burst allowance so an idle account's first `burst` calls (a turn's lead read and
reply) go out at once. Reservations use Redis' own clock, so workers on different hosts agree;
no 1-second window ever holds more than `rps + burst` calls (5 + 2 = Kommo's 7 by default).
`pause()` pushes the schedule out (on a 429 with `retry_after`), which stops every process.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local nxt = tat + tonumber(ARGV[1])
if tonumber(ARGV[2]) == 1 then nxt = math.max(tat, now + tonumber(ARGV[1])) end
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.floor((nxt - now) / 1000) + 60000)
if tonumber(ARGV[2]) == 1 then return 0 end
local wait = tat - tonumber(ARGV[3]) - now
if wait < 0 then wait = 0 end
return wait
"""


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, rps: float, prefix: str = "kommo:rl",
                 max_concurrent_calls: int = 16, burst: int = 2) -> None:
        if rps <= 0 or burst < 1:
            raise ValueError("rps must be positive and burst at least 1")
        self.redis = redis
        self.interval_us = int(1_000_000 / rps)
        self.burst_us = (burst - 1) * self.interval_us
        self.prefix = prefix
        self._script = redis.register_script(_RESERVE)
        # redis-py's async pool raises (not waits) past max_connections: bound our share of it.
        self._gate = asyncio.Semaphore(max_concurrent_calls)

    def _key(self, account_key: str) -> str:
        return f"{self.prefix}:{account_key}"

    async def acquire(self, account_key: str) -> float:
        """Wait for this account's next slot; returns the seconds waited."""
        async with self._gate:
            delay_us = int(await self._script(keys=[self._key(account_key)], args=[self.interval_us, 0, self.burst_us]))
        if delay_us > 0:
            await asyncio.sleep(delay_us / 1_000_000)
        return delay_us / 1_000_000

    async def pause(self, account_key: str, seconds: float) -> None:
        """No slot for this account before `seconds` from now (Kommo said retry_after)."""
        async with self._gate:
            await self._script(keys=[self._key(account_key)], args=[int(seconds * 1_000_000), 1, 0])
