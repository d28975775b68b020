"""Webhook in -> reply seen at the fake Kommo, with the fake LLM answering instantly.

One worker process (threads), debounce 0, 20 connected organisations (Kommo's rate limit is
per account: 5 req/s each). Two phases in one run:
- latency: a few virtual customers, each sending a message and waiting for its reply (the
  worker is not saturated, so this is the overhead of the path itself): p50/p99 and the share
  of time per stage (intake = parse+store+enqueue in the web app; retrieve, LLM, Kommo calls
  and storage as the turn timed them; queue = the rest of the end-to-end time: the broker hop,
  the worker handing the task to its event loop, the event claim and conversation update before
  the turn, the conversation lock, and the fake's reply reaching this process);
- throughput: many customers at once, saturating the worker: replies/s per worker process.

    python bench/reply_overhead.py [--messages 200] [--latency-customers 2] [--customers 32]
Last line: RESULT p50_ms=<x> p99_ms=<y> rps=<z>
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


class TimedNotes(list):
    """The fake account's note list, resolving a waiter when a reply carrying its marker lands."""

    def __init__(self, waiters: dict[str, asyncio.Future]) -> None:
        super().__init__()
        self.waiters = waiters

    def append(self, note) -> None:
        super().append(note)
        text = (note.get("params") or {}).get("text", "")
        for token in text.split():
            fut = self.waiters.pop(token, None)
            if fut is not None and not fut.done():
                fut.set_result(time.perf_counter())


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(messages: int, latency_customers: int, customers: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-reply-"))
    stack = Stack(tmp, orgs=20, leads_per_org=max(2, customers // 20 + 1), debounce_s=0.0, worker_concurrency=8)
    print("starting the stack (nx-27017, Redis, web app, worker, beat, fake Kommo, fake LLM)...", flush=True)
    await stack.start()
    waiters: dict[str, asyncio.Future] = {}
    for tenant in stack.tenants:
        tenant.fake_acc.notes = TimedNotes(waiters)
    latencies: list[float] = []
    acks: list[float] = []
    throughput_replies: list[float] = []
    counter = iter(range(10**9))
    loop = asyncio.get_running_loop()

    async def customer(cid: int, count: int, record: str) -> None:
        for _ in range(count):
            n = next(counter)
            marker = f"b{n}"
            # Messages rotate over the accounts, as real traffic from many customers does:
            # each account keeps its own 5 req/s budget.
            tenant = stack.tenants[n % len(stack.tenants)]
            lead = tenant.leads[cid % len(tenant.leads)]
            fut = loop.create_future()
            waiters[marker] = fut
            started = time.perf_counter()
            await stack.send(tenant, lead_id=lead, chat_id=f"c{cid}-{marker}", msg_id=f"m-{marker}", text=f"{marker} hi")
            acked = time.perf_counter()
            done = await asyncio.wait_for(fut, 120)
            if record == "latency":
                latencies.append(done - started)
                acks.append(acked - started)
            elif record == "throughput":
                throughput_replies.append(done)

    try:
        # Warm-up: load the embedding model, open the stores, fill connection pools.
        await asyncio.gather(*(customer(c, 2, "") for c in range(customers)))
        # Stage timings below cover the latency phase only.
        await stack.services.storage.db["turns"].delete_many({})
        per = max(1, messages // latency_customers)
        await asyncio.gather(*(customer(c, per, "latency") for c in range(latency_customers)))
        stages = await stage_means(stack)
        t0 = time.perf_counter()
        await asyncio.gather(*(customer(c, max(1, messages // customers) * 2, "throughput") for c in range(customers)))
        wall = time.perf_counter() - t0
    finally:
        await stack.stop()
    n = len(latencies)
    rps = len(throughput_replies) / wall
    p50, p99 = pct(latencies, 0.50) * 1000, pct(latencies, 0.99) * 1000
    mean_e2e = statistics.mean(latencies)
    stages["intake"] = statistics.mean(acks)
    accounted = sum(v for k, v in stages.items() if k != "queue")
    stages["queue"] = max(0.0, mean_e2e - accounted)
    print(f"latency phase: {n} replies, {latency_customers} customers at a time: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"throughput phase: {len(throughput_replies)} replies in {wall:.1f}s by 1 worker process, "
          f"{customers} customers at a time: {rps:.1f} replies/s")
    print("share of end-to-end time per stage (mean):")
    for stage in ("intake", "queue", "retrieve", "llm", "kommo", "storage"):
        print(f"  {stage:<9} {stages.get(stage, 0) * 1000:7.1f} ms  {100 * stages.get(stage, 0) / mean_e2e:5.1f}%")
    print(f"RESULT p50_ms={p50:.1f} p99_ms={p99:.1f} rps={rps:.1f}")


async def stage_means(stack: Stack) -> dict[str, float]:
    sums: dict[str, float] = {}
    count = 0
    async for plan in stack.services.storage.db["turns"].find({"outcome": "replied"}, {"timings": 1}):
        t = plan.get("timings") or {}
        count += 1
        kommo = t.get("kommo_lead", 0) + t.get("kommo_send", 0)
        storage = (t.get("decide", 0) - t.get("kommo_lead", 0) - t.get("retrieve", 0) - t.get("llm", 0)) + \
                  (t.get("execute", 0) - t.get("kommo_send", 0))
        for key, value in (("retrieve", t.get("retrieve", 0)), ("llm", t.get("llm", 0)), ("kommo", kommo),
                           ("storage", storage)):
            sums[key] = sums.get(key, 0.0) + value
    return {k: v / max(count, 1) for k, v in sums.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--latency-customers", type=int, default=2)
    parser.add_argument("--customers", type=int, default=32)
    args = parser.parse_args()
    eventloop.run(run(args.messages, args.latency_customers, args.customers))  # as the web process runs


if __name__ == "__main__":
    main()
