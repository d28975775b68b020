"""Plan quotas before a reply, through the real engine, intake and metering: at 79% nothing, at
80% one notice to owners and admins however many workers check at once, at 100% one more, the
agent stops answering and hands off with a Kommo note saying why, and the test chat says so."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from core.agents.service import AgentAdmin
from core.ai.ingest.sources import SourceIntake
from core.clock import month_key, utcnow
from core.config import KnowledgeSettings
from core.models.conversation import ConversationState
from core.models.org import Role
from core.usage.metering import UsageContext
from core.usage.plans import PlanCatalog, PlanLimitReached
from core.usage.quota import PlanQuota, QuotaExceeded, knowledge_room
from tasks.ask import ask_once

WORKERS = 8


async def seed_replies(shop, count: int, start: int) -> None:
    """Replies the agent already sent this month, recorded the way the engine records them."""
    for i in range(start, start + count):
        ctx = UsageContext(org_id=shop.org_id, purpose="reply", idempotency_key=f"turn:seed{i}",
                           agent_id=shop.agent.id, conversation_id=f"conv_seed{i % 7}", lead_id=9000 + i)
        assert await shop.services.meter.record_turn(ctx, replied=True, handoff=False)


async def workers_check(shop) -> list:
    """Eight workers, each with its own quota service, check the same reply at once."""
    services = shop.services
    quotas = [PlanQuota(services.storage, services.usage, services.plans) for _ in range(WORKERS)]
    return await asyncio.gather(*(q.check_reply(shop.org_id, shop.agent.id) for q in quotas))


async def notices(shop) -> list[dict]:
    return [n async for n in shop.services.storage.db["notifications"].find(
        {"org_id": shop.org_id, "kind": {"$in": ["quota_warning", "quota_exceeded"]}})]


async def test_quota_at_79_80_and_100_percent(shop, fake_llm):
    free = shop.services.plans.get("free")
    assert free.replies == 100
    await seed_replies(shop, 78, 0)
    msg = await shop.customer_says("Hello, do you deliver to Kazan?")
    conv = await shop.conversation()
    assert await shop.engine.run_turn(shop.org_id, conv.id, msg) == "replied"  # the 79th reply
    assert (await shop.services.usage.month_totals(shop.org_id, _month()))["replies"] == 79

    decisions = await workers_check(shop)
    assert all(d.allowed for d in decisions) and await notices(shop) == []  # 79%: nothing yet

    await seed_replies(shop, 1, 78)  # 80 of 100
    decisions = await workers_check(shop)
    assert all(d.allowed for d in decisions)
    found = await notices(shop)
    assert [(n["kind"], n["params"]["limit"], n["params"]["percent"]) for n in found] == [
        ("quota_warning", "replies", 80)]
    assert found[0]["audience"] == "admins"
    await workers_check(shop)
    assert len(await notices(shop)) == 1  # once per period and threshold

    await seed_replies(shop, 20, 79)  # 100 of 100
    decisions = await workers_check(shop)
    assert not any(d.allowed for d in decisions)
    assert decisions[0].reason == "plan_limit:replies"
    kinds = sorted(n["kind"] for n in await notices(shop))
    assert kinds == ["quota_exceeded", "quota_warning"]

    calls_before = len(fake_llm.requests)
    msg = await shop.customer_says("And the price of the sofa?")
    conv = await shop.conversation()
    await shop.engine.run_turn(shop.org_id, conv.id, msg)
    conv = await shop.conversation()
    assert conv.state == ConversationState.HANDED_OFF and conv.state_reason == "quota"
    assert len(fake_llm.requests) == calls_before  # no LLM call past the limit
    assert any("the plan's limit is used up" in n["params"]["text"] for n in shop.notes())
    assert sorted(n["kind"] for n in await notices(shop)) == ["quota_exceeded", "quota_warning"]
    # The handoff notice to the customer is not an answer the plan counts.
    assert (await shop.services.usage.month_totals(shop.org_id, _month()))["replies"] == 100

    with pytest.raises(QuotaExceeded, match="monthly limit is reached"):
        await ask_once(shop.services, shop.org_id, shop.agent.id, "test chat question")


async def test_a_bigger_plan_lifts_the_limit(shop):
    await seed_replies(shop, 100, 0)
    assert not (await shop.services.quota.check_reply(shop.org_id, shop.agent.id)).allowed
    await shop.services.storage.orgs.update(shop.org_id, {"plan": "pro"})
    decision = await shop.services.quota.check_reply(shop.org_id, shop.agent.id)
    assert decision.allowed and decision.usage["replies"] == pytest.approx(100 / 3000)


def _month() -> str:
    return month_key(utcnow())


async def test_the_plan_limits_agents_and_the_cli_sets_the_plan(shop, mongo_url, redis_url, tmp_path):
    services = shop.services
    owner = await services.storage.operators.add(shop.org_id, 777001, Role.OWNER, name="Olga")
    admin = AgentAdmin(services.storage, services.plans)
    draft = {"name": "Second", "persona": "a second seller", "instructions": "Be brief."}
    with pytest.raises(PlanLimitReached, match="Free plan allows 1 agent"):
        await admin.create(shop.org_id, owner, draft)  # the shop's agent is the free plan's one

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGO_", "REDIS_", "SECRETS_"))}
    env.update(MONGO_URL=mongo_url, MONGO_DATABASE=services.storage.db.name, REDIS_URL=redis_url,
               DATA_DIR=str(tmp_path), SECRETS_KEYS="k1:" + "A" * 43 + "=", PYTHONPATH=os.getcwd())

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli", "org", "plan", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    refused = cli(shop.org_id, "platinum")
    assert refused.returncode == 1 and "no plan 'platinum'" in refused.stderr and "Traceback" not in refused.stderr
    done = cli(shop.org_id, "pro")
    assert done.returncode == 0 and "free -> pro" in done.stdout, done.stderr
    shown = cli(shop.org_id)
    assert "plan pro" in shown.stdout and "replies 0%" in shown.stdout
    assert (await admin.create(shop.org_id, owner, draft)).name == "Second"  # pro allows five


async def test_the_plan_limits_knowledge_size(storage, tmp_path):
    plans_file = tmp_path / "plans.json"
    plans_file.write_text('{"tiny": {"fee_usd": "0", "limits": {"knowledge_mb": 1}}}')
    plans = PlanCatalog.from_file(plans_file)
    org = await storage.orgs.create("Tiny")
    await storage.orgs.update(org.id, {"plan": "tiny"})
    intake = SourceIntake(storage, KnowledgeSettings(), room=knowledge_room(storage, plans))
    first = await intake.add_file(org.id, "agt_1", "prices.txt", b"x" * 600_000)
    with pytest.raises(PlanLimitReached, match="holds 1 MB of knowledge"):
        await intake.add_file(org.id, "agt_1", "more.txt", b"y" * 600_000)
    with pytest.raises(PlanLimitReached):
        await intake.add_text(org.id, "agt_1", "notes", "z" * 500_000)
    sources = await storage.knowledge.list(org.id)
    assert [s.id for s in sources] == [first.id]  # nothing stored for the refused ones (checked before the upload)
    await intake.add_text(org.id, "agt_1", "small", "fits in what is left")
