"""Issue 17 figure: the time one flooded tenant adds to another tenant's reply (target: < 1 s).

The whole stack (nx-27017, Redis, the web app in this process, one Celery worker process with 4
threads, the fake Kommo pacing each account at 5 req/s, the fake LLM answering at once), two
connected tenants, debounce 0. Three phases in one run, each measuring the reply time of one
message of tenant B (webhook posted -> the reply note seen at the fake Kommo), median of a few:
- quiet: B alone;
- flood, fair: tenant A posts a burst of messages just before B's (its excess beyond the fair
  share goes to the low-priority list);
- flood, FIFO: the same with the fair share out of reach (queue order as before issue 17; the
  worker's per-organisation turn slots, WORKER_TURNS_PER_ORG, stay on in both flood phases: they
  are the worker process's setting, fixed for the run).
Between phases A's backlog drains. Printed: each phase's median and the delay the flood added.

    python bench/tenant_isolation.py [--flood 60] [--rounds 3]
Last line: RESULT added_fair_s=<x> added_fifo_s=<y> ratio=<fifo/fair> quiet_s=<z>
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import eventloop
from tests.e2e.stack import Stack

FAIR_SHARE = 10


class TimedNotes(list):
    """The fake account's notes, resolving a waiter when a reply carrying its marker lands."""

    def __init__(self, waiters: dict[str, asyncio.Future]) -> None:
        super().__init__()
        self.waiters = waiters

    def append(self, note) -> None:
        super().append(note)
        for token in (note.get("params") or {}).get("text", "").split():
            fut = self.waiters.pop(token, None)
            if fut is not None and not fut.done():
                fut.set_result(time.perf_counter())


async def run(flood: int, rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-h17-"))
    stack = Stack(tmp, orgs=2, leads_per_org=4, debounce_s=0.0, worker_concurrency=4)
    print("starting the stack (nx-27017, Redis, web app, worker, fake Kommo, fake LLM)...", flush=True)
    await stack.start()
    waiters: dict[str, asyncio.Future] = {}
    for tenant in stack.tenants:
        tenant.fake_acc.notes = TimedNotes(waiters)
    a, b = stack.tenants
    loop = asyncio.get_running_loop()
    counter = iter(range(10**9))

    async def message(tenant, lead_index: int) -> asyncio.Future:
        marker = f"h{next(counter)}"
        fut = loop.create_future()
        waiters[marker] = fut
        await stack.send(tenant, lead_id=tenant.leads[lead_index % len(tenant.leads)], chat_id=f"c-{marker}",
                         msg_id=f"m-{marker}", text=f"{marker} hello, how much is the sofa?")
        return fut

    async def b_reply_time() -> float:
        started = time.perf_counter()
        fut = await message(b, 0)
        return await asyncio.wait_for(fut, 300) - started

    async def phase(name: str, share: int | None) -> float:
        times = []
        for _ in range(rounds):
            await stack.services.redis.delete(*[k async for k in stack.services.redis.scan_iter("fair:*")] or ["-"])
            stack.queue.fair_share = share or 10**9
            stack.queue._seen.clear()
            floods = []
            if share is not None:
                floods = await asyncio.gather(*(message(a, i) for i in range(flood)))
            times.append(await b_reply_time())
            if floods:
                await asyncio.wait_for(asyncio.gather(*floods), 600)  # A's backlog drains before the next round
        median = statistics.median(times)
        print(f"{name:<12} B's reply: median {median:.2f} s over {rounds} ({', '.join(f'{t:.2f}' for t in times)})",
              flush=True)
        return median

    try:
        for i in range(3):  # warm-up: models, stores, pools
            await asyncio.wait_for(await message(a, i), 120)
            await asyncio.wait_for(await message(b, i), 120)
        quiet = await phase("quiet", None)
        fair = await phase("flood, fair", FAIR_SHARE)
        fifo = await phase("flood, FIFO", 10**9)
    finally:
        await stack.stop()
    added_fair, added_fifo = max(0.0, fair - quiet), max(0.0, fifo - quiet)
    print(f"a burst of {flood} messages of tenant A added {added_fair:.2f} s to tenant B's reply with the fair "
          f"queue (share {FAIR_SHARE}/min) and {added_fifo:.2f} s first come first served (the machine is shared: "
          "absolute times vary, the ratio is from the same run)")
    print(f"RESULT added_fair_s={added_fair:.2f} added_fifo_s={added_fifo:.2f} "
          f"ratio={added_fifo / max(added_fair, 0.01):.1f} quiet_s={quiet:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flood", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    eventloop.run(run(args.flood, args.rounds))


if __name__ == "__main__":
    main()
