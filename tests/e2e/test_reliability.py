"""Reliability of the webhook -> reply path with real workers, real Redis and nx-27017 (each
killed or restarted mid-run), the fake Kommo (optionally faulty) and the fake LLM."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from tests.e2e.stack import Stack

pytestmark = pytest.mark.timeout(600)


async def _send_all(stack: Stack, count: int, prefix: str, concurrency: int = 16) -> list[str]:
    """`count` conversations, one customer message each, spread over the tenants."""
    markers = [f"{prefix}-{i}" for i in range(count)]
    sem = asyncio.Semaphore(concurrency)
    slots = itertools.cycle([(t, lead) for lead_i in range(stack.leads_per_org) for t in stack.tenants
                             for lead in [t.leads[lead_i]]])
    plan = [(marker, *next(slots)) for marker in markers]

    async def one(marker, tenant, lead_id):
        async with sem:
            await stack.send(tenant, lead_id=lead_id, chat_id=f"chat-{marker}", msg_id=f"msg-{marker}",
                             text=f"{marker} how much is delivery?")

    await asyncio.gather(*(one(*p) for p in plan))
    return markers


def _assert_exactly_once(stack: Stack, markers: list[str]) -> None:
    counts = stack.reply_counts(markers)
    missing = [m for m, n in counts.items() if n == 0]
    doubled = [m for m, n in counts.items() if n > 1]
    assert not missing, f"{len(missing)} turns never answered, e.g. {missing[:5]}"
    assert not doubled, f"{len(doubled)} turns answered more than once, e.g. {doubled[:5]}"


def _assert_rate_respected(stack: Stack) -> None:
    for tenant in stack.tenants:
        assert stack.fake.max_in_window(tenant.fake_acc.id) <= 7
    assert stack.fake.rate_limited == 0  # Kommo never had to push back on our pace


@pytest.fixture
async def stack(tmp_path, request):
    params = getattr(request, "param", {})
    s = Stack(tmp_path / "stack", **params)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def test_worker_killed_three_times_during_500_conversations(stack: Stack):
    sending = asyncio.create_task(_send_all(stack, 500, "k"))
    markers = [f"k-{i}" for i in range(500)]
    for threshold in (60, 200, 350):
        await stack.wait_for(lambda t=threshold: sum(stack.reply_counts(markers).values()) >= t, 240,
                             f"{threshold} replies")
        stack.kill_worker()
    await sending
    await stack.wait_for(lambda: all(stack.reply_counts(markers).values()), 300, "every reply")
    await asyncio.sleep(3)  # let any late duplicate surface before counting
    _assert_exactly_once(stack, markers)
    _assert_rate_respected(stack)


async def test_redis_restart_loses_nothing(stack: Stack):
    first = await _send_all(stack, 60, "r1")
    await stack.wait_for(lambda: sum(stack.reply_counts(first).values()) >= 20, 120, "first replies")
    stack.redis.kill()  # every queued task, lock and rate-limit counter is gone
    await asyncio.sleep(1)
    stack.redis.start()
    second = await _send_all(stack, 40, "r2")
    await stack.wait_for(lambda: all(stack.reply_counts(first + second).values()), 240, "every reply")
    await asyncio.sleep(3)
    _assert_exactly_once(stack, first + second)


async def test_mongo_restart_loses_nothing(stack: Stack):
    first = await _send_all(stack, 50, "m1")
    await stack.wait_for(lambda: sum(stack.reply_counts(first).values()) >= 15, 120, "first replies")
    stack.mongo.kill()
    late = asyncio.create_task(_send_all(stack, 30, "m2"))  # Kommo keeps sending; we answer 5xx meanwhile
    await asyncio.sleep(2)
    stack.mongo.start()
    second = await late
    await stack.wait_for(lambda: all(stack.reply_counts(first + second).values()), 240, "every reply")
    await asyncio.sleep(3)
    _assert_exactly_once(stack, first + second)


@pytest.mark.parametrize("stack", [{"fault_rate": 0.2}], indirect=True)
async def test_faulty_kommo_all_replies_delivered_within_rate(stack: Stack):
    markers = await _send_all(stack, 120, "f")
    await stack.wait_for(lambda: all(stack.reply_counts(markers).values()), 300, "every reply")
    await asyncio.sleep(3)
    assert stack.fake.faults > 20  # the fault mode really hit us
    _assert_exactly_once(stack, markers)
    _assert_rate_respected(stack)


@pytest.mark.parametrize("stack", [{"debounce_s": 1.5, "orgs": 1}], indirect=True)
async def test_duplicates_burst_and_handoff_through_real_workers(stack: Stack):
    tenant = stack.tenants[0]
    lead = tenant.leads[0]
    # Kommo re-sends the same webhook three times: one reply.
    for _ in range(3):
        await stack.send(tenant, lead_id=lead, chat_id="dup", msg_id="msg-dup", text="dup-1 hello")
    # Two quick messages inside the debounce window: one reply answering both.
    await stack.send(tenant, lead_id=tenant.leads[1], chat_id="burst", msg_id="b1", text="burst-a sofa?")
    await stack.send(tenant, lead_id=tenant.leads[1], chat_id="burst", msg_id="b2", text="burst-b armchair?")
    await stack.wait_for(lambda: stack.replies("dup-1") >= 1 and stack.replies("burst-b") >= 1, 120, "replies")
    await asyncio.sleep(random.uniform(3, 4))
    assert stack.replies("dup-1") == 1
    burst_notes = [n["params"]["text"] for n in tenant.fake_acc.notes if "burst-b" in n["params"]["text"]]
    assert len(burst_notes) == 1 and "burst-a" in burst_notes[0]
    assert stack.replies("burst-a") == 1
