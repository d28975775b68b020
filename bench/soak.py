"""Soak: 10,000 webhooks through the whole stack while worker processes are SIGKILLed and
Redis (without persistence: every queued task is lost) is restarted once. Counts conversations
that never got a reply (lost) and got more than one (duplicated).

    python bench/soak.py [--messages 10000] [--workers 2]
Last line: RESULT lost=<n> duplicated=<m> seconds=<s>
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import eventloop
from tests.e2e.stack import Stack

DEADLINE_S = 540  # the whole benchmark must stay under 10 minutes


async def run(messages: int, workers: int, orgs: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    stack = Stack(tmp, orgs=orgs, leads_per_org=25, debounce_s=0.0, worker_concurrency=8,
                  worker_processes=workers)
    print("starting the stack...", flush=True)
    await stack.start()
    markers = [f"s{i}" for i in range(messages)]
    replied: dict[str, int] = dict.fromkeys(markers, 0)
    for tenant in stack.tenants:
        notes = tenant.fake_acc.notes

        class Counting(list):
            def append(self, note, _replied=replied) -> None:
                super().append(note)
                for token in (note.get("params") or {}).get("text", "").split():
                    if token in _replied:
                        _replied[token] += 1

        tenant.fake_acc.notes = Counting(notes)
    slots = itertools.cycle([(t, lead) for i in range(25) for t in stack.tenants for lead in [t.leads[i]]])
    sem = asyncio.Semaphore(48)
    t0 = time.perf_counter()

    async def one(marker: str) -> None:
        tenant, lead = next(slots)
        async with sem:
            await stack.send(tenant, lead_id=lead, chat_id=f"c-{marker}", msg_id=f"m-{marker}",
                             text=f"{marker} is it available?", deadline_s=DEADLINE_S)

    def answered() -> int:
        return sum(1 for v in replied.values() if v)

    async def chaos() -> None:
        events = [(0.2, "kill"), (0.45, "kill"), (0.6, "redis"), (0.75, "kill")]
        for share, what in events:
            while answered() < share * messages and time.perf_counter() - t0 < DEADLINE_S:
                await asyncio.sleep(0.5)
            if what == "kill":
                stack.kill_worker(0)
                print(f"[{time.perf_counter() - t0:6.1f}s] SIGKILLed a worker at {answered()} replies", flush=True)
            else:
                stack.redis.kill()
                await asyncio.sleep(1)
                stack.redis.start()
                print(f"[{time.perf_counter() - t0:6.1f}s] restarted Redis at {answered()} replies", flush=True)

    chaos_task = asyncio.create_task(chaos())
    try:
        await asyncio.gather(*(one(m) for m in markers))
        print(f"[{time.perf_counter() - t0:6.1f}s] all {messages} webhooks accepted", flush=True)
        while answered() < messages and time.perf_counter() - t0 < DEADLINE_S:
            await asyncio.sleep(1)
        await asyncio.sleep(5)  # let late duplicates surface
        elapsed = time.perf_counter() - t0
        chaos_task.cancel()
        print(await stack.diagnose())
    finally:
        await stack.stop()
    lost = sum(1 for v in replied.values() if v == 0)
    duplicated = sum(1 for v in replied.values() if v > 1)
    print(f"{messages} conversations: {messages - lost} answered, {lost} lost, {duplicated} duplicated, "
          f"{elapsed:.0f}s ({(messages - lost) / elapsed:.1f} replies/s with {workers} worker process(es))")
    print(f"RESULT lost={lost} duplicated={duplicated} seconds={elapsed:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--orgs", type=int, default=40)
    args = parser.parse_args()
    eventloop.run(run(args.messages, args.workers, args.orgs))  # as the web process runs


if __name__ == "__main__":
    main()
