"""Reports over usage seeded through the real metering path: every read-model pipeline against
an independent sum over the raw events, drift and re-pricing on known numbers, outcomes from
seeded lead status events, and both notebooks run once by papermill (billing through the CLI)
with their headline JSON and CSV equal to sums computed here; a failing notebook names its cell
and leaves no report behind."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.config import ReportSettings
from core.reports.billing import BillingReadModel
from core.reports.outcomes import OutcomesReadModel
from core.reports.render import ReportFailed, render_report
from core.reports.usage import Period, UsageReadModel, anomalies
from core.usage.metering import UsageContext, UsageMeter
from core.usage.plans import SHIPPED_PLANS, PlanCatalog
from core.usage.pricing import SHIPPED_TABLE, PriceTable
from core.usage.reconcile import reconcile_closed_days
from core.usage.repository import UsageRepository

MONTH = "2026-11"
START, END = "2026-11-01", "2026-11-30"
MODELS = ["openai/gpt-4o-mini", "openai/gpt-4o", "acme/unknown-model"]
SPIKE_DAY = "2026-11-20"


def prices() -> PriceTable:
    return PriceTable.from_csv(SHIPPED_TABLE, default_input_usd_per_1m="1", default_output_usd_per_1m="4")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def seed(storage) -> dict:
    """Two organisations' November through the metering path: LLM calls (some with the
    provider's cost, one model unknown to the table), turns with replies and handoffs, a spike
    day; lead status events written directly, as the Kommo intake writes them."""
    rng = random.Random(11)
    alpha = await storage.orgs.create("Alpha")
    beta = await storage.orgs.create("Beta")
    await storage.orgs.update(alpha.id, {"plan": "pro"})
    clock = Clock()
    meter = UsageMeter(UsageRepository(storage.db), prices(), provider="openrouter.ai", clock=clock)
    n = 0
    for day in range(1, 31):
        for org, agents, volume in ((alpha, ["ag_a1", "ag_a2"], 4), (beta, ["ag_b1"], 2)):
            count = volume * (12 if f"2026-11-{day:02d}" == SPIKE_DAY and org is alpha else 1)
            for _ in range(count):
                n += 1
                clock.now = datetime(2026, 11, day, rng.randint(0, 23), rng.randint(0, 59), tzinfo=UTC)
                agent = rng.choice(agents)
                lead = rng.randint(1, 25) + (0 if org is alpha else 100)
                conv = f"conv_{org.id}_{lead}"
                model = rng.choice(MODELS)
                prompt, completion = rng.randint(200, 4000), rng.randint(10, 600)
                # gpt-4o-mini's provider price: 3% above ours; gpt-4o's: 10% above (flagged).
                table = prices().cost_nano(model, clock.now.date().isoformat(), prompt, completion)[0]
                factor = {"openai/gpt-4o-mini": 1.03, "openai/gpt-4o": 1.10}.get(model)
                provider = table * factor / 1e9 if factor else None
                base = UsageContext(org_id=org.id, purpose="reply", idempotency_key=f"llm:t{n}:1", agent_id=agent,
                                    conversation_id=conv, lead_id=lead)
                await meter.record_llm(base, model=model, prompt_tokens=prompt, completion_tokens=completion,
                                       provider_cost_usd=provider, latency_ms=rng.randint(100, 2000))
                await meter.record_llm(base, model=model, prompt_tokens=prompt, completion_tokens=completion)  # retry
                if rng.random() < 0.2:
                    summary = UsageContext(org_id=org.id, purpose="summary", idempotency_key=f"llm:s{n}",
                                           agent_id=agent, conversation_id=conv)
                    await meter.record_llm(summary, model="openai/gpt-4o-mini", prompt_tokens=300,
                                           completion_tokens=40)
                turn = UsageContext(org_id=org.id, purpose="reply", idempotency_key=f"turn:t{n}", agent_id=agent,
                                    conversation_id=conv, lead_id=lead)
                await meter.record_turn(turn, replied=True, handoff=rng.random() < 0.1)
    status = []
    for org, lead, won, lost in ((alpha, 3, False, False), (alpha, 3, True, False), (alpha, 5, False, False),
                                 (alpha, 7, False, True), (alpha, 26, True, False), (beta, 101, True, False)):
        status.append({"org_id": org.id, "agent_id": None, "lead_id": lead if lead % 2 else str(lead),
                       "pipeline_id": 1, "old_status_id": 10, "new_status_id": 142 if won else 20 + lead,
                       "won": won, "lost": lost, "at": "2026-11-15T10:00:00.000000Z", "day": "2026-11-15"})
    # Outside the period, another tenant's lead number, and a malformed row: none of them count.
    status.append({"org_id": beta.id, "lead_id": 3, "won": True, "day": "2026-11-16"})
    status.append({"org_id": alpha.id, "lead_id": 5, "won": True, "day": "2026-12-02"})
    status.append({"org_id": alpha.id, "lead_id": "not-a-lead", "won": True, "day": "2026-11-16"})
    await storage.db["lead_status_events"].insert_many(status)
    return {"alpha": alpha.id, "beta": beta.id}


async def raw_events(storage, org_id: str | None = None) -> list[dict]:
    query = {"day": {"$gte": START, "$lte": END}, **({"org_id": org_id} if org_id else {})}
    return [d async for d in storage.db["usage_events"].find(query)]


def sums(docs: list[dict], by: str | None = None) -> dict:
    out: dict = defaultdict(lambda: defaultdict(int))
    for d in docs:
        key = (d.get(by) or "") if by else "all"
        row = out[key]
        row["replies"] += d["replies"]
        row["handoffs"] += d["handoffs"]
        row["turns"] += int(d["kind"] == "turn")
        row["calls"] += int(d["kind"] == "llm")
        row["cost_nano"] += d["cost_nano"]
        row["total_tokens"] += d["prompt_tokens"] + d["completion_tokens"]
        if d.get("provider_cost_nano") is not None:
            row["provider_nano"] += d["provider_cost_nano"]
            row["provider_priced_nano"] += d["cost_nano"]
        row["unknown"] += int(d["kind"] == "llm" and not d["price_known"])
    return out


FIELDS = ("replies", "handoffs", "turns", "calls", "cost_nano", "total_tokens", "provider_nano")


def pick(row: dict) -> dict:
    return {f: row[f] for f in FIELDS}


def talked_moved_won(docs: list[dict], org_id: str, agent_id: str, status: list[dict]) -> tuple[int, int, int]:
    talked = {d["lead_id"] for d in docs if d["kind"] == "turn" and d["agent_id"] == agent_id and d["lead_id"]}
    moved, won = set(), set()
    for s in status:
        try:
            lead = int(s["lead_id"])
        except ValueError:
            continue
        if s["org_id"] != org_id or not (START <= s["day"] <= END) or lead not in talked:
            continue
        if s.get("won"):
            won.add(lead)
            moved.add(lead)
        elif not s.get("lost") and s.get("new_status_id") not in (None, s.get("old_status_id")):
            moved.add(lead)
    return len(talked), len(moved), len(won)


@pytest.fixture
async def seeded(storage):
    return await seed(storage)


async def test_read_models_equal_independent_sums(storage, seeded):
    alpha = seeded["alpha"]
    model = UsageReadModel(storage.db)
    docs = await raw_events(storage)
    period_all, period_alpha = Period(START, END), Period(START, END, alpha)
    assert pick(await model.totals(period_all)) == pick(sums(docs)["all"])
    alpha_docs = [d for d in docs if d["org_id"] == alpha]
    assert pick(await model.totals(period_alpha)) == pick(sums(alpha_docs)["all"])
    for field in ("day", "agent_id", "model", "purpose", "org_id"):
        got = {k: pick(v) for k, v in (await model.by(period_all, field)).items()}
        assert got == {k: pick(v) for k, v in sums(docs, field).items()}, field
    # A sub-range by string days (no datetime in the $match).
    week = [d for d in alpha_docs if "2026-11-10" <= d["day"] <= "2026-11-16"]
    assert pick(await model.totals(Period("2026-11-10", "2026-11-16", alpha))) == pick(sums(week)["all"])
    busiest = await model.busiest_conversations(period_alpha, limit=3)
    per_conv = sums(alpha_docs, "conversation_id")
    top = sorted(((v["cost_nano"], k) for k, v in per_conv.items() if k), reverse=True)[:3]
    assert [(b["cost_nano"], b["conversation_id"]) for b in busiest] == top

    drift = {d["model"]: d for d in await model.drift(period_all, 0.05)}
    per_model = sums(docs, "model")
    assert set(drift) == {"openai/gpt-4o-mini", "openai/gpt-4o"}  # the unknown model had no provider cost
    for name, row in drift.items():
        assert row["provider_nano"] == per_model[name]["provider_nano"]
        assert row["table_nano"] == per_model[name]["provider_priced_nano"]
    assert drift["openai/gpt-4o-mini"]["drift"] == pytest.approx(0.03, abs=1e-4)
    assert drift["openai/gpt-4o"]["drift"] == pytest.approx(0.10, abs=1e-4)
    assert [m for m, d in drift.items() if d["flagged"]] == ["openai/gpt-4o"]

    # Re-pricing: every call of the period as gpt-4o (2.50 / 10.00 per 1M), from the tokens alone.
    llm = [d for d in docs if d["kind"] == "llm"]
    expected = sum(round(d["prompt_tokens"] * 2500 + d["completion_tokens"] * 10000) for d in llm)
    repriced = await model.reprice(period_all, prices(), model="openai/gpt-4o")
    assert repriced["cost_nano"] == expected and repriced["unpriced_groups"] == 0
    same = await model.reprice(period_all, prices())
    assert same["cost_nano"] == sums(docs)["all"]["cost_nano"]  # the same table gives the stored cost
    assert same["unpriced_groups"] > 0  # the unknown model is still priced by the default, and counted
    before = await storage.db["usage_events"].count_documents({})
    assert before == len(await raw_events(storage))  # re-pricing wrote nothing

    outcomes = await OutcomesReadModel(storage.db).per_agent(period_all)
    status = [d async for d in storage.db["lead_status_events"].find({})]
    for row in outcomes:
        org_docs = [d for d in docs if d["org_id"] == row["org_id"]]
        assert (row["leads_talked"], row["leads_moved"], row["deals_won"]) == talked_moved_won(
            org_docs, row["org_id"], row["agent_id"], status)
        agent_cost = sums([d for d in org_docs if d["agent_id"] == row["agent_id"]])["all"]["cost_nano"]
        assert row["cost_nano"] == agent_cost
        assert row["cost_per_deal_won_nano"] == (agent_cost // row["deals_won"] if row["deals_won"] else None)
    assert sum(r["deals_won"] for r in outcomes) >= 2  # lead 3 (alpha) and lead 101 (beta) were won

    spikes = anomalies([(d, v["cost_nano"]) for d, v in sorted(sums(alpha_docs, "day").items())])
    assert [a["day"] for a in spikes] == [SPIKE_DAY]

    lines = await BillingReadModel(storage.db, PlanCatalog.from_file(SHIPPED_PLANS)).invoice_lines(MONTH)
    assert {(ln["org_id"], ln["line"]) for ln in lines} == {(o, k) for o in seeded.values()
                                                            for k in ("plan_fee", "included_replies",
                                                                      "overage_replies")}


async def test_nightly_reconcile_repairs_a_lost_rollup(storage, seeded):
    alpha = seeded["alpha"]
    day = "2026-11-29"
    key = (await storage.db["usage_daily"].find_one({"org_id": alpha, "day": day}))["_id"]
    await storage.db["usage_daily"].delete_one({"_id": key})  # a worker died before its $inc
    model = UsageReadModel(storage.db)
    docs = [d for d in await raw_events(storage, alpha) if d["day"] == day]
    assert pick(await model.totals(Period(day, day, alpha))) != pick(sums(docs)["all"])
    changed = await reconcile_closed_days(UsageRepository(storage.db), datetime(2026, 12, 1, 0, 20, tzinfo=UTC))
    assert changed[alpha] >= 1
    assert pick(await model.totals(Period(day, day, alpha))) == pick(sums(docs)["all"])
    monthly = await UsageRepository(storage.db).month_totals(alpha, MONTH)
    assert pick(monthly) == pick(sums(await raw_events(storage, alpha))["all"])


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=env["DATA_DIR"], env=env, capture_output=True,
                          text=True, timeout=600)


async def test_notebooks_render_with_totals_equal_to_independent_sums(storage, seeded, mongo_url, redis_url,
                                                                      tmp_path):
    alpha = seeded["alpha"]
    docs = await raw_events(storage, alpha)
    settings = ReportSettings(cell_timeout_s=300)
    out = tmp_path / "reports"
    params = {"org_id": alpha, "start": START, "end": END, "currency": "USD", "mongo_url": mongo_url,
              "database": storage.db.name, "reprice_model": "openai/gpt-4o"}
    usage = await asyncio.to_thread(render_report, "usage", params, settings, out)
    head = usage.headline
    expected = sums(docs)["all"]
    assert {f: head[f] for f in FIELDS} == pick(expected)
    assert head["cost"] == pytest.approx(expected["cost_nano"] / 1e9)
    assert head["drift_flagged"] == ["openai/gpt-4o"] and head["anomaly_days"] == [SPIKE_DAY]
    assert head["unknown_price_calls"] == expected["unknown"] > 0
    status = [d async for d in storage.db["lead_status_events"].find({})]
    agents = sorted({d["agent_id"] for d in docs if d.get("agent_id")})
    outcomes = [talked_moved_won(docs, alpha, a, status) for a in agents]
    assert (head["leads_talked"], head["leads_moved"], head["deals_won"]) == tuple(map(sum, zip(*outcomes, strict=True)))
    assert head["repriced_cost_nano"] == sum(d["prompt_tokens"] * 2500 + d["completion_tokens"] * 10000
                                             for d in docs if d["kind"] == "llm")
    html = usage.html.read_text()
    assert "usage_report_data(" not in html and "<img" in html  # code cells left out, charts in
    assert usage.notebook.exists() and (usage.folder / "usage_daily.png").exists()

    # Billing for every organisation through the CLI adapter, as an analyst runs it.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGO_", "REDIS_", "SECRETS_", "REPORT_"))}
    env.update(MONGO_URL=mongo_url, MONGO_DATABASE=storage.db.name, REDIS_URL=redis_url, DATA_DIR=str(tmp_path),
               PYTHONPATH=os.getcwd(), REPORT_NOTEBOOKS_DIR=str(Path.cwd() / "notebooks"))
    done = _cli(env, "report", "billing", "--month", MONTH, "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    billing = json.loads(done.stdout.strip().splitlines()[-1])
    folder = Path(billing["folder"])
    with (folder / "invoice_lines.csv").open() as f:
        rows = list(csv.DictReader(f))
    plans = PlanCatalog.from_file(SHIPPED_PLANS)
    all_docs = await raw_events(storage)
    want: dict[str, int] = {}
    for org_id, plan_name in ((alpha, "pro"), (seeded["beta"], "free")):
        plan = plans.get(plan_name)
        replies = sum(d["replies"] for d in all_docs if d["org_id"] == org_id)
        want[org_id] = plan.fee_nano + max(0, replies - plan.included_replies) * plan.overage_per_reply_nano
    got: dict[str, int] = defaultdict(int)
    for row in rows:
        got[row["org_id"]] += int(row["amount_nano"])
    assert dict(got) == want
    assert billing["headline"]["total_nano"] == sum(want.values())
    assert billing["headline"]["org_totals_nano"] == want
    assert (folder / "billing_report.html").exists() and not [p for p in out.iterdir() if p.name.startswith(".")]

    # A notebook that fails (a month that does not exist reaches its load cell) names the cell, leaves nothing.
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(ReportFailed, match=r"in cell 'load'.*InvalidInput"):
        await asyncio.to_thread(render_report, "billing", {"month": "2026-13", "org_id": None, "mongo_url": mongo_url,
                                                           "database": storage.db.name}, settings, out)
    assert sorted(p.name for p in out.iterdir()) == before
    refused = _cli(env, "report", "usage", "--from", "2026-11-31", "--to", END)
    assert refused.returncode == 2 and "2026-11-31" in refused.stderr and "Traceback" not in refused.stderr
