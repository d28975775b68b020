"""Kommo's per-IP budget shared by two accounts: how long a quiet account's calls wait while a
busy one floods, with the fair-share limiter (core/kommo/http/ratelimit.py) against a plain
first-come schedule over the same budget (each call booked into the next free slot), in the
same run, both measured at the fake Kommo (which answers 429 past 7 calls/s per IP).

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/kommo_budget.py [--busy 60] [--quiet 6]
Last line: RESULT ratio=<quiet wait first-come / fair> quiet_wait_fair_s=<...> quiet_wait_fifo_s=<...>
           max_per_s=<most calls the fake saw in any second, fair run> rate_limited=<429s, fair run>
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp
import redis.asyncio as aioredis

from core.kommo.http.ratelimit import RateLimiter
from tests.fakes.kommo import FakeKommo

_FIFO = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
redis.call('SET', KEYS[1], string.format('%.0f', tat + tonumber(ARGV[1])), 'PX', 120000)
local wait = tat - tonumber(ARGV[2]) - now
if wait < 0 then wait = 0 end
return wait
"""


class FirstCome:
    """The same budget, each call booked into the next free slot whatever its account."""

    def __init__(self, redis: aioredis.Redis, rps: float, burst: int, key: str) -> None:
        self.interval = int(1_000_000 / rps)
        self.burst = (burst - 1) * self.interval
        self.key = key
        self.script = redis.register_script(_FIFO)

    async def acquire(self, _account: str) -> float:
        wait = int(await self.script(keys=[self.key], args=[self.interval, self.burst]))
        await asyncio.sleep(wait / 1_000_000)
        return wait / 1_000_000


async def scenario(limiter, fake: FakeKommo, tokens: dict[str, str], busy: int, quiet: int) -> dict[str, float]:
    start_log = len(fake.requests)
    start_429 = fake.rate_limited
    waits: dict[str, list[float]] = {"busy": [], "quiet": []}
    async with aiohttp.ClientSession() as session:
        async def call(name: str) -> None:
            started = time.monotonic()
            for _ in range(5):
                await limiter.acquire(name)
                async with session.get(f"{fake.base_url}/api/v4/account",
                                       headers={"Authorization": f"Bearer {tokens[name]}"}) as resp:
                    if resp.status != 429:
                        break
            waits[name].append(time.monotonic() - started)

        flood = [asyncio.create_task(call("busy")) for _ in range(busy)]
        await asyncio.sleep(0.3)  # the quiet account's customer writes while the flood is queued
        await asyncio.gather(*[call("quiet") for _ in range(quiet)])
        await asyncio.gather(*flood)
    times = sorted(t for *_, t in fake.requests[start_log:])
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return {"quiet_wait": max(waits["quiet"]), "busy_wait": max(waits["busy"]), "max_per_s": best,
            "rate_limited": fake.rate_limited - start_429}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--busy", type=int, default=60)
    parser.add_argument("--quiet", type=int, default=6)
    args = parser.parse_args()
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")  # keys under a fresh prefix, expiring
    redis = aioredis.from_url(url)
    async with FakeKommo() as fake:
        accounts = {name: fake.add_account(name) for name in ("busy", "quiet")}
        tokens = {name: fake.book.issue_long_lived(acc.id) for name, acc in accounts.items()}
        tag = f"bench:{time.time_ns()}"
        fair = await scenario(RateLimiter(redis, 5.0, prefix=tag, burst=2), fake, tokens, args.busy, args.quiet)
        await asyncio.sleep(1.1)
        fifo = await scenario(FirstCome(redis, 5.0, 2, f"{tag}:fifo"), fake, tokens, args.busy, args.quiet)
    await redis.aclose()
    print(f"fair:       quiet waited at most {fair['quiet_wait']:.2f} s, busy {fair['busy_wait']:.2f} s, "
          f"{fair['max_per_s']} calls in the busiest second, {fair['rate_limited']} 429s")
    print(f"first-come: quiet waited at most {fifo['quiet_wait']:.2f} s, busy {fifo['busy_wait']:.2f} s, "
          f"{fifo['max_per_s']} calls in the busiest second, {fifo['rate_limited']} 429s")
    print(f"RESULT ratio={fifo['quiet_wait'] / max(fair['quiet_wait'], 1e-6):.2f} "
          f"quiet_wait_fair_s={fair['quiet_wait']:.2f} quiet_wait_fifo_s={fifo['quiet_wait']:.2f} "
          f"max_per_s={fair['max_per_s']} rate_limited={fair['rate_limited']}")


if __name__ == "__main__":
    asyncio.run(main())
