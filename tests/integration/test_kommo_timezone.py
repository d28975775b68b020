"""The Kommo account's own timezone (issue 15, section 4): synced from `GET /api/v4/account`
(`_embedded.datetime_settings.timezone`), and used for working hours typed without a zone and
for task deadlines the agent sets, never UTC by default."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from core.agents.hours import parse_hours
from core.models.agent import AgentAction
from tests.fakes.llm import Reply, ToolCall

MSK = ZoneInfo("Europe/Moscow")  # the fake accounts' zone (UTC+3 all year)


async def _turn(shop, msg_id: str, chat_id: str = "chat-1") -> str:
    conv = await shop.conversation(chat_id)
    return await shop.engine.run_turn(shop.org_id, conv.id, msg_id)


async def test_sync_stores_the_accounts_timezone(kommo, core_services, fake_kommo):
    org = await core_services.storage.orgs.create("Far east")
    fake_acc = fake_kommo.add_account("vlad", timezone="Asia/Vladivostok")
    result = await kommo.connections.connect_long_lived(org.id, "vlad", fake_kommo.book.issue_long_lived(fake_acc.id))
    assert result.account.timezone == "Asia/Vladivostok"
    fake_acc.timezone = "Asia/Yekaterinburg"  # changed in the account's settings: the next sync follows
    await kommo.sync_org(org.id)
    assert (await core_services.storage.kommo_accounts.for_org(org.id)).timezone == "Asia/Yekaterinburg"


async def test_working_hours_without_a_zone_are_the_accounts_hours(shop):
    storage = shop.services.storage
    assert (await storage.kommo_accounts.for_org(shop.org_id)).timezone == "Europe/Moscow"
    hours = parse_hours("1-7 09:00-18:00")
    assert hours.timezone is None  # not UTC: the account's zone, whatever it is when checked
    await storage.agents.update(shop.org_id, shop.agent.id, {"working_hours": hours.model_dump()})
    # 16:00 UTC is within 09-18 in UTC, but 19:00 in Moscow: the shop is closed.
    shop.engine.deps.clock = lambda: datetime(2026, 12, 2, 16, 0, tzinfo=UTC)
    assert await _turn(shop, await shop.customer_says("Are you open?")) == "skipped:out_of_hours"
    # 06:30 UTC is before 09:00 in UTC, but 09:30 in Moscow: open.
    shop.engine.deps.clock = lambda: datetime(2026, 12, 3, 6, 30, tzinfo=UTC)
    assert await _turn(shop, await shop.customer_says("And now?")) == "replied"


async def test_a_task_deadline_without_an_offset_is_in_the_accounts_timezone(shop, fake_llm):
    storage = shop.services.storage
    await storage.agents.update(shop.org_id, shop.agent.id, {
        "allowed_actions": [AgentAction.REPLY, AgentAction.HANDOFF_TO_HUMAN, AgentAction.CREATE_TASK]})
    tomorrow = (datetime.now(MSK) + timedelta(days=1)).date()
    fake_llm.push(Reply(content="I have asked a manager to call you tomorrow at 10.", tool_calls=[
        ToolCall("create_task", {"text": "Call the customer back", "due_at": f"{tomorrow}T10:00:00"})]))
    assert await _turn(shop, await shop.customer_says("Call me tomorrow at 10, please")) == "replied"
    (task,) = [t for t in shop.fake_acc.tasks if t.get("text") == "Call the customer back"]
    assert task["complete_till"] == int(datetime(tomorrow.year, tomorrow.month, tomorrow.day, 10,
                                                 tzinfo=MSK).timestamp())
    system = fake_llm.requests[-1]["messages"][0]["content"]
    assert "Europe/Moscow" in system and "+03:00" in system  # the model was told the time there
