"""Notifications through the real Bot against the fake Bot API: each operator gets a handoff
once, with a link to the lead, "I take it" and "Give back" buttons that work, a mute button;
a user who blocked the bot is recorded, not retried; forged buttons reach nothing."""

from __future__ import annotations

from bot.notify import TelegramSender
from core.models.conversation import ConversationState
from core.models.kommo import AuthKind, KommoAccount
from core.models.org import Role
from tests.fixtures.telegram import add_member, org_with_owner, user


async def test_handoff_notification_is_delivered_once_with_working_buttons(console, console_services):
    storage = console_services.storage
    owner, admin, editor, gone = user(5001, language_code="en"), user(5002, language_code="ru"), user(5003), user(5004)
    membership = await org_with_owner(console_services, owner, "Acme")
    org_id = membership.org.id
    await add_member(console_services, org_id, admin, Role.ADMIN)
    await add_member(console_services, org_id, editor, Role.EDITOR)
    await add_member(console_services, org_id, gone, Role.ADMIN)
    console.fake.blocked.add(gone.id)
    await storage.kommo_accounts.insert(org_id, KommoAccount(_id="kac_t", org_id=org_id, subdomain="acme",
                                                             auth_kind=AuthKind.LONG_LIVED, hook_token_hash="h"))
    conv = await storage.conversations.get_or_create(org_id, "lead:77", {"lead_id": 77})
    await storage.notifications.publish(org_id, "handoff", dedupe_key="t1:handoff", reason="nothing_relevant",
                                        conversation_id=conv.id, lead_id=77)
    await console.send(admin, "/help")  # the bot now knows the admin's Telegram language (ru)
    delivery, sender = console.dp["delivery"], TelegramSender(console.bot, console.dp["i18n_instance"], storage)

    first = await delivery.deliver_all(sender)
    again = await delivery.deliver_all(sender)
    assert (first.sent, first.undeliverable, again.sent) == (2, 1, 0)
    assert len(console.fake.calls_of("sendMessage", owner.id)) == 1
    assert len(console.fake.calls_of("sendMessage", admin.id)) == 2  # /help, then the notification
    assert not console.fake.calls_of("sendMessage", editor.id)  # audience: owners and admins
    assert await storage.notifications.pending(org_id) == []
    profile = await storage.db["console_profiles"].find_one({"_id": f"tg:{gone.id}"})
    assert profile["unreachable_since"]
    statuses = {d["operator_id"]: d["status"] for d in await storage.db["notification_deliveries"].find().to_list()}
    assert sorted(statuses.values()) == ["sent", "sent", "undeliverable"]

    shown = console.fake.last(owner.id)
    assert "Acme" in shown.text and "the knowledge has no answer" in shown.text and "77" in shown.text
    assert "в базе знаний нет ответа" in console.fake.last(admin.id).text
    urls = [b["url"] for b in shown.buttons() if "url" in b]
    assert urls == ["https://acme.kommo.com/leads/detail/77"]

    await console.click(owner, "I take it")
    assert (await storage.conversations.get(org_id, conv.id)).state == ConversationState.PAUSED
    assert "paused" in console.alerts()[-1]
    await console.click(owner, "Give back to the agent")
    assert (await storage.conversations.get(org_id, conv.id)).state == ConversationState.BOT_ACTIVE

    # Another organisation's manager pressing a forged button reaches nothing.
    stranger = user(5005, language_code="en")
    await org_with_owner(console_services, stranger, "Other")
    message, button = console.button(owner, "I take it")
    await console.press(stranger, message, button["callback_data"])
    assert "not a member" in console.alerts()[-1]
    assert (await storage.conversations.get(org_id, conv.id)).state == ConversationState.BOT_ACTIVE

    # Mute: the next handoff skips the owner, the admin still gets it.
    await console.click(owner, "Mute this kind")
    await storage.notifications.publish(org_id, "handoff", dedupe_key="t2:handoff", reason="max_replies",
                                        conversation_id=conv.id, lead_id=77)
    report = await delivery.deliver_all(sender)
    assert report.sent == 1 and len(console.fake.calls_of("sendMessage", owner.id)) == 1
    # The blocked user writes to the bot again: they are reachable again.
    console.fake.blocked.discard(gone.id)
    await console.send(gone, "/help")
    profile = await storage.db["console_profiles"].find_one({"_id": f"tg:{gone.id}"})
    assert profile["unreachable_since"] is None


async def test_a_429_is_waited_out_and_the_message_still_arrives(console, console_services):
    owner = user(5006, language_code="en")
    await org_with_owner(console_services, owner)
    console.fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    await console.send(owner, "/help")
    sends = console.fake.calls_of("sendMessage", owner.id)
    assert len(sends) == 2 and sends[1].at - sends[0].at >= 0.95
    assert "/agents" in console.text(owner)
