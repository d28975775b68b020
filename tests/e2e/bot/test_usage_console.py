"""/usage, /report and the quota notice's buttons through the real dispatcher and the fake Bot
API, over usage recorded by the real meter: the figures equal the recorded events, the chart
arrives as a photo, a viewer sees usage but never billing (not even by forged callback data),
an owner gets the billing report's HTML and CSV after a progress message, and "Pause the agent"
on an 80% notice pauses it (and only for a member of that organisation)."""

from __future__ import annotations

import csv
import io

from bot.notify import TelegramSender
from core.clock import month_key, utcnow
from core.models.agent import Agent
from core.models.org import Role
from core.usage.metering import UsageContext
from core.usage.quota import PlanQuota
from tests.fixtures.telegram import add_member, org_with_owner, user


async def seed_today(services, org_id: str, agent_id: str, turns: int) -> None:
    for i in range(turns):
        ctx = UsageContext(org_id=org_id, purpose="reply", idempotency_key=f"llm:u{i}:1", agent_id=agent_id,
                           conversation_id=f"conv_{i % 4}", lead_id=700 + i % 5)
        await services.meter.record_llm(ctx, model="openai/gpt-4o-mini", prompt_tokens=1000, completion_tokens=100)
        turn = UsageContext(org_id=org_id, purpose="reply", idempotency_key=f"turn:u{i}", agent_id=agent_id,
                            conversation_id=f"conv_{i % 4}", lead_id=700 + i % 5)
        await services.meter.record_turn(turn, replied=True, handoff=i == 0)


async def test_usage_report_and_quota_buttons(console, console_services):
    services = console_services
    owner, viewer = user(6001, language_code="en"), user(6002, language_code="en")
    membership = await org_with_owner(services, owner, "Acme")
    org_id = membership.org.id
    await add_member(services, org_id, viewer, Role.VIEWER)
    agent = Agent(_id="agt_sales", org_id=org_id, name="Sales", language="en")
    await services.storage.agents.insert(org_id, agent)
    await seed_today(services, org_id, agent.id, 80)  # 80 of the free plan's 100 replies

    await console.send(viewer, "/usage")
    text = console.fake.chat(viewer.id)[-2].text
    # 80 calls of 1000 + 100 tokens at $0.15 / $0.60 per 1M = 80 x $0.00021 = $0.0168.
    assert "Today: 80 replies, 88000 tokens, $0.0168; leads talked to 5" in text
    assert "• agt_sales: 80 replies, 1 handoffs" in text
    photos = console.fake.calls_of("sendPhoto", viewer.id)
    assert len(photos) == 1 and photos[0].params["photo"]["content"].startswith(b"\x89PNG")

    await console.send(viewer, "/report")
    shown = [b["text"] for b in console.fake.last(viewer.id).buttons()]
    assert shown == ["📈 Usage"]  # no billing for a viewer
    message, _ = console.button(viewer, "Usage")
    await console.press(viewer, message, "rp:k:b")  # forged: billing anyway
    await console.press(viewer, message, "rp:m:b:2026-11")
    assert not console.fake.calls_of("sendDocument", viewer.id)
    assert console.alerts()[-2:] == ["Your role cannot do this. Ask an owner or admin of the organisation."] * 2

    month = (await services.usage.month_totals(org_id, _this_month()))
    assert month["replies"] == 80
    await console.send(owner, "/report")
    await console.click(owner, "Billing")
    await console.click(owner, _this_month())
    edits = [c.params.get("text", "") for c in console.fake.calls_of("editMessageText", owner.id)]
    assert any("Rendering" in t for t in edits) and "✅" in edits[-1]
    docs = console.fake.calls_of("sendDocument", owner.id)
    assert [d.params["document"]["filename"] for d in docs] == [f"billing_{_this_month()}.html",
                                                                 f"invoice_lines_{_this_month()}.csv"]
    rows = list(csv.DictReader(io.StringIO(docs[1].params["document"]["content"].decode())))
    assert sum(int(r["amount_nano"]) for r in rows) == 0  # free plan, 80 replies: nothing to pay
    assert {r["line"]: int(r["quantity"]) for r in rows}["included_replies"] == 80

    # The 80% notice with its buttons, then "Pause the agent".
    assert (await PlanQuota(services.storage, services.usage, services.plans).check_reply(org_id, agent.id)).allowed
    sender = TelegramSender(console.bot, console.dp["i18n_instance"], services.storage)
    report = await console.dp["delivery"].deliver_all(sender)
    assert report.sent == 1  # the owner (viewers are not the audience)
    notice = console.fake.last(owner.id)
    assert "80% of the plan's replies limit" in notice.text
    stranger = user(6003, language_code="en")
    await org_with_owner(services, stranger, "Other")
    message, button = console.button(owner, "Pause the agent")
    await console.press(stranger, message, button["callback_data"])
    assert (await services.storage.agents.get(org_id, agent.id)).enabled
    await console.click(owner, "Pause the agent")
    assert not (await services.storage.agents.get(org_id, agent.id)).enabled
    assert "is paused" in console.alerts()[-1]
    await console.click(owner, "📊 Usage")
    assert "Usage — Acme" in console.fake.chat(owner.id)[-2].text


def _this_month() -> str:
    return month_key(utcnow())
