"""The usage report over 1,000,000 usage events of 50 organisations (three months) on the
embedded MongoDB-wire server: the usage notebook rendered by papermill (kernel start included)
for one org-month and for all organisations' month, against loading that month's raw events
into pandas and computing the same figures, in the same run.

Events are written in the stored form the metering path writes (`UsageRepository.record`:
the event, its counters and roll-up key), with `insert_many`; the daily and monthly roll-ups
the write path would have `$inc`-ed are summed here and inserted the same way (a million
single `$inc` upserts would take the embedded server far longer than the report).
The report's headline is checked against the generator's own sums before any time is trusted.

    .venv/bin/python bench/report.py [--events 1000000] [--orgs 50]
Last line: RESULT seconds=<one org-month> all_seconds=<all orgs, one month> speedup=<pandas/ours, all orgs>
           peak_mb=<the notebook kernel's peak RSS>
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd

from core.config import ReportSettings
from core.ids import new_id
from core.models.stored import iso
from core.reports.render import render_report
from core.reports.usage import Period
from core.storage.indexes import ensure_indexes
from core.storage.mongo import create_mongo_client
from core.usage.model import UsageEvent
from core.usage.pricing import SHIPPED_TABLE, PriceTable
from core.usage.repository import COUNTERS, daily_key, event_counters, monthly_key, org_day
from tests.fixtures.servers import nx_server

MONTHS = {"2026-09": 30, "2026-10": 31, "2026-11": 30}
REPORT_MONTH = "2026-11"
MODELS = ["openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-3.5-haiku", "acme/unknown"]
PURPOSES = ["reply", "reply", "reply", "summary", "query_translation", "campaign"]
BATCH = 20_000


def generate(n: int, orgs: int, prices: PriceTable):
    """Yield (event document, event, counters) in the stored form the meter writes, deterministic.
    Each agent answers on its own model; summaries and translations go to gpt-4o-mini."""
    rng = random.Random(2026)
    days = [f"{m}-{d:02d}" for m, count in MONTHS.items() for d in range(1, count + 1)]
    org_ids = [f"org_bench{i:02d}" for i in range(orgs)]
    template = UsageEvent(_id="x", org_id="o", kind="llm", day="2026-11-01", month="2026-11").to_mongo()
    del template["_id"]
    for i in range(n):
        org = org_ids[i % orgs]
        day = rng.choice(days)
        a = rng.randint(1, 3)
        agent = f"agt_{org[-2:]}_{a}"
        lead = rng.randint(1, 400)
        event = UsageEvent.model_construct(**{**template, "id": new_id("use"), "org_id": org, "day": day,
                                              "month": day[:7], "agent_id": agent, "lead_id": lead,
                                              "conversation_id": f"conv_{org[-2:]}_{lead}"})
        event.created_at = f"{day}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00.000000Z"
        if rng.random() < 0.3:
            event.kind, event.purpose, event.replies = "turn", "reply", 1
            event.handoffs = int(rng.random() < 0.08)
            event.idempotency_key, event.lead_key = f"turn:b{i}", f"{org}|{agent}|{lead}"
        else:
            purpose = rng.choice(PURPOSES)
            model = MODELS[(int(org[-2:]) + a) % len(MODELS)] if purpose == "reply" else "openai/gpt-4o-mini"
            prompt, completion = rng.randint(300, 5000), rng.randint(10, 700)
            cost, known = prices.cost_nano(model, day, prompt, completion)
            event.model, event.purpose, event.provider = model, purpose, "openrouter.ai"
            event.prompt_tokens, event.completion_tokens, event.total_tokens = prompt, completion, prompt + completion
            event.latency_ms, event.cost_nano, event.price_known = rng.randint(200, 3000), cost, known
            event.provider_cost_nano = int(cost * 1.02) if model.startswith("openai/") else None
            event.idempotency_key = f"llm:b{i}:1"
        counters = event_counters(event)
        doc = {**template, **{k: getattr(event, k) for k in FIELDS}, "_id": event.id, **counters,
               "rollup_key": daily_key(event), "org_day": org_day(org, day)}
        yield doc, event, counters


FIELDS = [f for f in UsageEvent.model_fields if f != "id"]


async def load(db, n: int, orgs: int) -> dict[str, dict[str, int]]:
    prices = PriceTable.from_csv(SHIPPED_TABLE, default_input_usd_per_1m=1, default_output_usd_per_1m=4)
    daily: dict[str, dict] = {}
    monthly: dict[str, dict] = {}
    batch = []
    written = 0
    started = time.perf_counter()
    for doc, event, counters in generate(n, orgs, prices):
        batch.append(doc)
        for store, key, identity in (
                (daily, daily_key(event), {"org_id": event.org_id, "day": event.day,
                                           "org_day": org_day(event.org_id, event.day), "month": event.month,
                                           "agent_id": event.agent_id or "", "model": event.model,
                                           "purpose": event.purpose}),
                (monthly, monthly_key(event.org_id, event.month), {"org_id": event.org_id, "month": event.month})):
            row = store.setdefault(key, {"_id": key, **identity, **dict.fromkeys(COUNTERS, 0)})
            for c in COUNTERS:
                row[c] += counters[c]
        if len(batch) >= BATCH:
            await db["usage_events"].insert_many(batch, ordered=False)
            written += len(batch)
            batch.clear()
            if written % 200_000 == 0:
                print(f"  events written: {written} ({time.perf_counter() - started:.0f} s)", flush=True)
    if batch:
        await db["usage_events"].insert_many(batch, ordered=False)
    for coll, rows in (("usage_daily", daily), ("usage_monthly", monthly)):
        values = list(rows.values())
        for i in range(0, len(values), BATCH):
            await db[coll].insert_many(values[i:i + BATCH], ordered=False)
    for i in range(orgs):
        await db["organizations"].insert_one({"_id": f"org_bench{i:02d}", "name": f"Bench {i}", "plan": "pro",
                                              "created_at": iso(pd.Timestamp.now(tz="UTC").to_pydatetime())})
    print(f"loaded {n} events, {len(daily)} daily roll-ups in {time.perf_counter() - started:.0f} s", flush=True)
    return {k: v for k, v in monthly.items()}


async def pandas_report(db, org_id: str | None) -> tuple[float, dict]:
    """The same figures from the raw events: read them all, then group in pandas."""
    started = time.perf_counter()
    # The same indexed filters the read models use (org_day for one org, the day range for all).
    query = Period(f"{REPORT_MONTH}-01", f"{REPORT_MONTH}-{MONTHS[REPORT_MONTH]}", org_id).match()
    fields = ["org_id", "day", "agent_id", "model", "purpose", "kind", "conversation_id", "lead_id", "replies",
              "handoffs", "prompt_tokens", "completion_tokens", "cost_nano", "provider_cost_nano", "price_known"]
    docs = await db["usage_events"].find(query, dict.fromkeys(fields, 1)).to_list()
    frame = pd.DataFrame(docs)
    sums = ["replies", "handoffs", "prompt_tokens", "completion_tokens", "cost_nano"]
    figures = {"totals": frame[sums].sum().to_dict()}
    for by in ("day", "agent_id", "model", "purpose", "org_id"):
        figures[by] = frame.groupby(by)[sums].sum()
    turns = frame[frame["kind"] == "turn"]
    figures["talked"] = turns.groupby(["org_id", "agent_id"])["lead_id"].nunique()
    figures["busiest"] = frame.groupby("conversation_id")["cost_nano"].sum().nlargest(10)
    priced = frame[frame["provider_cost_nano"].notna()]
    figures["drift"] = priced.groupby("model")[["cost_nano", "provider_cost_nano"]].sum()
    return time.perf_counter() - started, figures


def ours(mongo_url: str, database: str, org_id: str | None, out: Path) -> tuple[float, dict]:
    start, end = f"{REPORT_MONTH}-01", f"{REPORT_MONTH}-{MONTHS[REPORT_MONTH]}"
    params = {"org_id": org_id, "start": start, "end": end, "currency": "USD", "mongo_url": mongo_url,
              "database": database}
    started = time.perf_counter()
    report = render_report("usage", params, ReportSettings(cell_timeout_s=600), out)
    return time.perf_counter() - started, report.headline


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--orgs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, nx_server(Path(tmp) / "mongo") as (url, _proc):
        client = create_mongo_client(url)
        db = client["bench_report"]
        await ensure_indexes(db)
        monthly = await load(db, args.events, args.orgs)
        org = "org_bench07"
        out = Path(tmp) / "reports"
        one_s, one_head = await asyncio.to_thread(ours, url, db.name, org, out)
        want = monthly[monthly_key(org, REPORT_MONTH)]
        for field in ("replies", "handoffs", "cost_nano", "total_tokens"):
            assert one_head[field] == want[field], (field, one_head[field], want[field])
        all_s, all_head = await asyncio.to_thread(ours, url, db.name, None, out)
        total = {f: sum(v[f] for k, v in monthly.items() if k.endswith(REPORT_MONTH)) for f in ("replies", "cost_nano")}
        assert (all_head["replies"], all_head["cost_nano"]) == (total["replies"], total["cost_nano"])
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        pandas_one, _ = await pandas_report(db, org)
        pandas_all, figures = await pandas_report(db, None)
        assert int(figures["totals"]["cost_nano"]) == total["cost_nano"]
        await client.close()
    print(f"one org-month: notebook {one_s:.1f} s, pandas over raw events {pandas_one:.1f} s "
          f"(ratio {pandas_one / one_s:.2f}: the kernel's start-up dominates so small a report)")
    print(f"all {args.orgs} orgs, one month: notebook {all_s:.1f} s, pandas over raw events {pandas_all:.1f} s")
    print(f"RESULT seconds={one_s:.2f} all_seconds={all_s:.2f} speedup={pandas_all / all_s:.2f} peak_mb={peak_mb:.0f}")


if __name__ == "__main__":
    asyncio.run(main())
