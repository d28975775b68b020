"""Metering through the real LLM client and the fake provider: prices from the shipped table,
the provider's own cost, offline token counts when the answer has no usage, one event per call
key, and the daily/monthly roll-ups equal to the events after concurrent writes and after the
reconcile repairs them."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import SecretStr

from core.ai.llm import LLMClient
from core.config import LLMSettings
from core.errors import InvalidInput
from core.usage.metering import UsageContext, UsageMeter
from core.usage.pricing import SHIPPED_TABLE, PriceTable
from core.usage.repository import COUNTERS, UsageRepository

ORG = "org_meter"


def prices() -> PriceTable:
    return PriceTable.from_csv(SHIPPED_TABLE, default_input_usd_per_1m="1", default_output_usd_per_1m="4")


def client(fake, meter: UsageMeter) -> LLMClient:
    settings = LLMSettings(base_url=fake.base_url, api_key=SecretStr("sk-" + "m" * 30), model="openai/gpt-4o-mini",
                           timeout_s=5.0, max_retries=0)
    return LLMClient(settings, meter=meter, backoff_base_s=0.01, backoff_max_s=0.02)


def ctx(key: str, **kw) -> UsageContext:
    return UsageContext(org_id=kw.pop("org_id", ORG), purpose=kw.pop("purpose", "reply"), idempotency_key=key, **kw)


async def events(storage, org_id: str = ORG) -> list[dict]:
    return [d async for d in storage.db["usage_events"].find({"org_id": org_id})]


def independent_daily(docs: list[dict]) -> dict[str, dict[str, int]]:
    """The roll-ups recomputed here from the raw events, field by field."""
    sums: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    for d in docs:
        key = "|".join([d["org_id"], d["day"], d.get("agent_id") or "", d.get("model") or "", d.get("purpose") or ""])
        row = sums[key]
        metered = d["kind"] in ("llm", "embedding")
        row["events"] += 1
        row["calls"] += int(metered)
        row["turns"] += int(d["kind"] == "turn")
        row["replies"] += d["replies"]
        row["handoffs"] += d["handoffs"]
        row["prompt_tokens"] += d["prompt_tokens"]
        row["completion_tokens"] += d["completion_tokens"]
        row["total_tokens"] += d["prompt_tokens"] + d["completion_tokens"]
        row["cost_nano"] += d["cost_nano"]
        has = d.get("provider_cost_nano") is not None
        row["provider_calls"] += int(has)
        row["provider_nano"] += d.get("provider_cost_nano") or 0
        row["provider_priced_nano"] += d["cost_nano"] if has else 0
        row["unknown_price_calls"] += int(metered and not d["price_known"])
        row["estimated_calls"] += int(d["tokens_estimated"])
        row["latency_ms"] += d["latency_ms"]
    return dict(sums)


async def stored_daily(storage, org_id: str = ORG) -> dict[str, dict[str, int]]:
    return {d["_id"]: {c: d.get(c, 0) for c in COUNTERS}
            async for d in storage.db["usage_daily"].find({"org_id": org_id})}


def month_of(daily: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    months: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    for key, row in daily.items():
        org, day = key.split("|")[:2]
        for c in COUNTERS:
            months[f"{org}|{day[:7]}"][c] += row[c]
    return dict(months)


async def stored_monthly(storage, org_id: str = ORG) -> dict[str, dict[str, int]]:
    return {d["_id"]: {c: d.get(c, 0) for c in COUNTERS}
            async for d in storage.db["usage_monthly"].find({"org_id": org_id})}


def test_prices_on_known_numbers(tmp_path):
    table = prices()
    # 1000 input tokens at $0.15/1M and 500 output at $0.60/1M: $0.00015 + $0.0003 = 450,000 nano-dollars.
    assert table.cost_nano("openai/gpt-4o-mini", "2026-12-01", 1000, 500) == (450_000, True)
    assert table.cost_nano("acme/unknown", "2026-12-01", 1000, 500) == (3_000_000, False)  # default $1 / $4
    dated = tmp_path / "p.csv"
    dated.write_text("model,provider,input_usd_per_1m,output_usd_per_1m,effective_from\n"
                     "m,x,1,2,2026-01-01\nm,x,3,6,2026-06-01\n")
    t = PriceTable.from_csv(dated, default_input_usd_per_1m=0, default_output_usd_per_1m=0)
    assert t.cost_nano("m", "2026-05-31", 1_000_000, 0) == (1_000_000_000, True)
    assert t.cost_nano("m", "2026-06-01", 1_000_000, 0) == (3_000_000_000, True)
    assert t.cost_nano("m", "2025-12-31", 10, 0) == (0, False)  # before its first price: the default, flagged
    bad = tmp_path / "bad.csv"
    bad.write_text("model,provider,input_usd_per_1m,output_usd_per_1m,effective_from\nm,x,abc,1,2026-01-01\n")
    with pytest.raises(InvalidInput, match="line 2: input price"):
        PriceTable.from_csv(bad, default_input_usd_per_1m=0, default_output_usd_per_1m=0)
    assert prices().price("openai/gpt-4o", "2026-01-01").output_usd_per_1m == Decimal("10.00")


async def test_llm_calls_are_priced_once_with_provider_cost_and_estimates(storage, fake_llm):
    from tests.fakes.llm import Reply  # noqa: PLC0415 - the fake's scripting types, used here only

    usage = UsageRepository(storage.db)
    meter = UsageMeter(usage, prices(), provider="openrouter.ai")
    llm = client(fake_llm, meter)
    try:
        fake_llm.push(Reply(content="hi", prompt_tokens=1000, completion_tokens=500, cost_usd=0.00047),
                      Reply(content="again", prompt_tokens=1000, completion_tokens=500, cost_usd=0.00047),
                      Reply(content="no usage here", omit_usage=True),
                      Reply(content="x", prompt_tokens=2000, completion_tokens=0))
        await llm.chat([{"role": "user", "content": "hello"}], usage=ctx("llm:t1:1", agent_id="a1", lead_id=7))
        # The same call key again (a redelivered turn): the provider is called, the usage is not counted twice.
        await llm.chat([{"role": "user", "content": "hello"}], usage=ctx("llm:t1:1", agent_id="a1", lead_id=7))
        await llm.chat([{"role": "user", "content": "count me offline"}], usage=ctx("llm:t2:1", agent_id="a1"))
        await llm.chat([{"role": "user", "content": "x"}], usage=ctx("llm:t3:1", agent_id="a1"),
                       model="acme/not-in-table")
    finally:
        await llm.close()
    docs = sorted(await events(storage), key=lambda d: d["idempotency_key"])
    assert [d["idempotency_key"] for d in docs] == ["llm:t1:1", "llm:t2:1", "llm:t3:1"]
    first, estimated, unknown = docs
    assert (first["cost_nano"], first["provider_cost_nano"], first["price_known"]) == (450_000, 470_000, True)
    assert first["lead_id"] == 7 and first["provider"] == "openrouter.ai" and first["latency_ms"] >= 0
    assert estimated["tokens_estimated"] is True and estimated["prompt_tokens"] > 0
    assert estimated["completion_tokens"] > 0 and estimated["provider_cost_nano"] is None
    assert unknown["price_known"] is False and unknown["cost_nano"] == 2_000_000  # 2000 x $1/1M default
    assert await stored_daily(storage) == independent_daily(docs)
    assert await stored_monthly(storage) == month_of(independent_daily(docs))


async def test_rollups_equal_events_after_concurrent_writes(storage):
    usage = UsageRepository(storage.db)
    meters = [UsageMeter(usage, prices()) for _ in range(4)]  # as four workers would
    rng = random.Random(20)
    models = ["openai/gpt-4o-mini", "openai/gpt-4o", "acme/unknown"]
    calls = []
    for i in range(240):
        key = f"llm:turn{i % 180}:1"  # a quarter of the calls repeat an earlier key (retries)
        r = random.Random(key)  # a retried call carries the same figures
        calls.append((rng.choice(meters), key, dict(
            model=r.choice(models), prompt_tokens=r.randint(0, 3000), completion_tokens=r.randint(0, 800),
            provider_cost_usd=r.choice([None, 0.0012, 0.0001]), latency_ms=r.randint(1, 900)),
            dict(agent_id=r.choice(["a1", "a2", None]), purpose=r.choice(["reply", "test_chat", "summary"]))))
    results = await asyncio.gather(*(m.record_llm(ctx(k, **c), **f) for m, k, f, c in calls))
    assert sum(results) == 180  # each key counted once, whichever worker got there first
    docs = await events(storage)
    assert len(docs) == 180
    expected = independent_daily(docs)
    assert await stored_daily(storage) == expected
    assert await stored_monthly(storage) == month_of(expected)


async def test_reconcile_repairs_rollups_of_closed_days(storage):
    usage = UsageRepository(storage.db)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    meter = UsageMeter(usage, prices(), clock=lambda: yesterday)
    for i in range(30):
        await meter.record_llm(ctx(f"llm:r{i}:1", agent_id=f"a{i % 3}"), model="openai/gpt-4o-mini",
                               prompt_tokens=100 + i, completion_tokens=10 * i)
    await meter.record_turn(ctx("turn:r1", agent_id="a1", lead_id=5), replied=True, handoff=False)
    day = yesterday.strftime("%Y-%m-%d")
    expected = independent_daily(await events(storage))
    assert await stored_daily(storage) == expected
    assert await usage.reconcile_day(ORG, day) == 0  # nothing to repair
    # A worker died between the event and its roll-up; another's roll-up was doubled; a stray one left.
    keys = sorted(expected)
    await storage.db["usage_daily"].delete_one({"_id": keys[0]})
    await storage.db["usage_daily"].update_one({"_id": keys[1]}, {"$inc": {"cost_nano": 999, "replies": 1}})
    await storage.db["usage_daily"].insert_one({"_id": f"{ORG}|{day}|ghost||reply", "org_id": ORG, "day": day,
                                                "org_day": f"{ORG}|{day}",
                                                "month": day[:7], "calls": 3, "cost_nano": 50})
    for c in COUNTERS:
        await storage.db["usage_monthly"].update_one({"_id": f"{ORG}|{day[:7]}"}, {"$inc": {c: 1}})
    assert await usage.reconcile_day(ORG, day) == 3
    stored = await stored_daily(storage)
    assert {k: v for k, v in stored.items() if any(v.values())} == expected
    # The month got the same corrections; the +1s no day explains are fixed by the month's own reconcile.
    assert await usage.reconcile_month(ORG, day[:7]) is True
    assert await stored_monthly(storage) == month_of(expected)
    assert await usage.orgs_with_usage(day, day) == [ORG]
