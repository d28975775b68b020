"""Kommo's request budget: one per calling IP, shared by every process and every account, with
fair shares between the accounts that are waiting. Kept in Redis.

Kommo allows 7 requests per second per calling IP, whatever accounts they are for, and answers
429 beyond (repeated abuse: the IP is banned with 403 on everything). So the budget belongs to
the egress identity (`KOMMO_EGRESS_ID`: processes behind one IP share it), not to an account.

Each call asks one Lua script, atomically on Redis' clock (so workers on different hosts agree):
- the egress budget is a GCRA schedule, slots `1/rps` apart with a small burst allowance, so no
  1-second window holds more than `rps + burst` calls (5 + 2 = Kommo's 7 by default);
- every account that asked in the last `active_window_s` counts as active; with `n` of them,
  an account's own schedule spaces its calls `n/rps` apart, so one busy account gets its share
  and the rest stays free for the others, while a lone account gets the whole budget;
- a call that cannot go now is not booked into the future (a busy account booking minutes
  ahead would make every other account queue behind it): it is told how long to wait, sleeps
  at most `max_poll_s`, and asks again.
`pause()` (a 429 with `retry_after`) stops the whole egress budget: Kommo counts the IP.
"""

from __future__ import annotations

import asyncio
import random
import time

import redis.asyncio as aioredis

_TRY = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, burst, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local paused = tonumber(redis.call('GET', KEYS[4]) or '0')
if paused > now then return paused - now end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
redis.call('ZADD', KEYS[3], now, ARGV[3])
redis.call('PEXPIRE', KEYS[3], math.floor(window / 1000) + 1000)
local n = redis.call('ZCARD', KEYS[3])
local g = tonumber(redis.call('GET', KEYS[1]) or '0')
if g < now then g = now end
if g - now > burst then return g - burst - now end
local a = tonumber(redis.call('GET', KEYS[2]) or '0')
if a < now then a = now end
if a - now > burst then return a - burst - now end
redis.call('SET', KEYS[1], string.format('%.0f', g + interval), 'PX', math.floor((g + interval - now) / 1000) + 60000)
redis.call('SET', KEYS[2], string.format('%.0f', a + interval * n), 'PX',
           math.floor((a + interval * n - now) / 1000) + 60000)
return -1
"""

_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local untl = now + tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[1]) or '0') < untl then
  redis.call('SET', KEYS[1], string.format('%.0f', untl), 'PX', math.floor(tonumber(ARGV[1]) / 1000) + 1000)
end
return 0
"""


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, rps: float, prefix: str = "kommo:rl", egress: str = "default",
                 max_concurrent_calls: int = 16, burst: int = 2, active_window_s: float = 0.5,
                 max_poll_s: float = 0.25) -> None:
        if rps <= 0 or burst < 1:
            raise ValueError("rps must be positive and burst at least 1")
        self.redis = redis
        self.interval_us = int(1_000_000 / rps)
        self.burst_us = (burst - 1) * self.interval_us
        self.window_us = int(active_window_s * 1_000_000)
        self.max_poll_s = max(max_poll_s, 0.01)
        self.base = f"{prefix}:{egress}"
        self._try = redis.register_script(_TRY)
        self._pause = redis.register_script(_PAUSE)
        # redis-py's async pool raises (not waits) past max_connections: bound our share of it.
        self._gate = asyncio.Semaphore(max_concurrent_calls)
        # One caller per account and process asks Redis at a time (the others queue here), so a
        # busy account's hundred waiting calls cost one poll, not a hundred.
        self._heads: dict[str, asyncio.Lock] = {}

    def _keys(self, account_key: str) -> list[str]:
        return [f"{self.base}:tat", f"{self.base}:acc:{account_key}", f"{self.base}:active", f"{self.base}:pause"]

    async def acquire(self, account_key: str) -> float:
        """Wait for a slot of the egress budget within this account's share; returns the seconds waited."""
        started = time.monotonic()
        keys = self._keys(account_key)
        head = self._heads.setdefault(account_key, asyncio.Lock())
        async with head:
            while True:
                async with self._gate:
                    wait_us = int(await self._try(keys=keys, args=[self.interval_us, self.burst_us, account_key,
                                                                   self.window_us]))
                if wait_us < 0:
                    return time.monotonic() - started
                # Jitter spreads the waiting callers' next asks, so they do not all land on one slot.
                await asyncio.sleep(min(wait_us / 1_000_000, self.max_poll_s) * random.uniform(0.8, 1.0) + 0.001)

    async def pause(self, seconds: float) -> None:
        """No call from this egress before `seconds` from now (Kommo answered 429)."""
        async with self._gate:
            await self._pause(keys=[f"{self.base}:pause"], args=[int(seconds * 1_000_000)])
