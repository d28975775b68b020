"""/kommo through the real dispatcher: connect with a long-lived token (the message holding it
is deleted and the bot says so), status, resync, disconnect with confirmation; editors and
viewers are refused."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.notify import TelegramSender
from core.delivery_setup import DeliverySetupInvalid
from core.models.agent import DeliveryMode
from core.models.org import Role
from core.orgs import create_agent
from tests.fixtures.telegram import add_member, org_with_owner, user
from web.app import create_app


async def test_connect_with_token_deletes_the_secret_message(console, console_services, fake_kommo):
    owner = user(3001, language_code="en")
    membership = await org_with_owner(console_services, owner)
    fake_acc = fake_kommo.add_account("acme")
    token = fake_kommo.book.issue_long_lived(fake_acc.id)
    await console.send(owner, "/kommo")
    assert "not connected" in console.text(owner)
    await console.click(owner, "Connect with a token")
    await console.send(owner, "acme.kommo.com")
    token_message_id = await console.send(owner, token)
    deletes = console.fake.calls_of("deleteMessage", owner.id)
    assert [int(c.params["message_id"]) for c in deletes] == [token_message_id]
    assert console.fake.messages[(owner.id, token_message_id)].deleted
    text = console.text(owner)
    assert "I deleted your message with the token" in text and "Connected to acme.kommo.com" in text
    assert "Synced: 2 pipelines" in text
    account = await console_services.storage.kommo_accounts.for_org(membership.org.id)
    assert account.account_id == fake_acc.id
    assert token not in text and all(token not in (c.params.get("text") or "") for c in console.fake.calls)
    # Status shows the webhook and what each agent's delivery reaches.
    assert "Webhook URL" in text and "add_message" in text
    # Resync, then disconnect with confirmation.
    await console.click(owner, "Resync")
    assert "Synced: 2 pipelines" in console.text(owner)
    await console.click(owner, "Disconnect")
    assert "Disconnect acme.kommo.com?" in console.text(owner)
    assert await console_services.storage.kommo_accounts.for_org(membership.org.id) is not None
    await console.click(owner, "Yes, disconnect")
    assert await console_services.storage.kommo_accounts.for_org(membership.org.id) is None
    assert "Kommo is disconnected" in console.text(owner)


async def test_a_wrong_token_is_deleted_too_and_explained(console, console_services, fake_kommo):
    owner = user(3002, language_code="ru")
    await org_with_owner(console_services, owner)
    fake_kommo.add_account("acme")
    await console.send(owner, "/kommo")
    await console.click(owner, "Подключить токеном")
    await console.send(owner, "acme")
    bad = await console.send(owner, "not-a-real-token")
    assert console.fake.messages[(owner.id, bad)].deleted
    assert "удалил из чата" in console.text(owner) and "отклонил токен" in console.text(owner)


async def test_editor_and_viewer_cannot_open_kommo(console, console_services):
    owner, editor = user(3003), user(3004, language_code="en")
    membership = await org_with_owner(console_services, owner)
    await add_member(console_services, membership.org.id, editor, Role.EDITOR)
    await console.send(editor, "/kommo")
    assert "Your role cannot do this" in console.text(editor)
    assert not console.fake.calls_of("deleteMessage")


async def test_oauth_link_then_callback_then_the_bot_tells_the_manager(console, console_services, fake_kommo,
                                                                       celery_queue):
    owner = user(3005, language_code="en")
    membership = await org_with_owner(console_services, owner)
    fake_acc = fake_kommo.add_account("acme")
    await console.send(owner, "/kommo")
    await console.click(owner, "Connect through OAuth")
    _, link = console.button(owner, "Open Kommo")
    state = parse_qs(urlsplit(link["url"]).query)["state"][0]
    client = TestClient(TestServer(create_app(console_services)))
    await client.start_server()
    try:
        resp = await client.get("/oauth/kommo/callback", params={
            "code": fake_kommo.book.issue_code(fake_acc.id), "state": state, "referer": "acme.kommo.com"})
        assert resp.status == 200
    finally:
        await client.close()
    account = await console_services.storage.kommo_accounts.for_org(membership.org.id)
    assert account is not None and account.auth_kind.value == "oauth"
    sender = TelegramSender(console.bot, console.dp["i18n_instance"], console_services.storage)
    await console.dp["delivery"].deliver_all(sender)
    assert "Kommo acme.kommo.com is connected" in console.text(owner)


async def _connected_org(console_services, fake_kommo, owner):
    membership = await org_with_owner(console_services, owner)
    fake_acc = fake_kommo.add_account("acme")
    token = fake_kommo.book.issue_long_lived(fake_acc.id)
    kommo = await console_services.kommo()
    await kommo.connections.connect_long_lived(membership.org.id, "acme", token)
    return membership, fake_acc


async def test_delivery_setup_validates_then_saves_and_prints_the_kommo_steps(console, console_services, fake_kommo):
    storage = console_services.storage
    owner = user(3006, language_code="en")
    membership, fake_acc = await _connected_org(console_services, fake_kommo, owner)
    org_id = membership.org.id
    agent = await create_agent(storage, org_id, "Seller", "Sell.")
    setup = console_services.delivery_setup()
    # The service refuses what cannot work, and saves nothing then.
    with pytest.raises(DeliverySetupInvalid) as missing_bot:
        await setup.configure(org_id, membership.operator, agent.id, DeliveryMode.SALESBOT_RUN, field_id=501)
    assert missing_bot.value.code == "delivery_bot_missing"
    with pytest.raises(DeliverySetupInvalid) as wrong_field:
        await setup.configure(org_id, membership.operator, agent.id, DeliveryMode.SALESBOT_RUN, bot_id=77, field_id=502)
    assert wrong_field.value.code == "delivery_field_invalid"
    assert (await storage.kommo_accounts.for_org(org_id)).salesbot_bot_id is None

    # Through the console: the same rules, then the saved mode and the steps for the Kommo admin.
    await console.send(owner, "/kommo")
    await console.click(owner, "Delivery set-up")
    await console.click(owner, "Seller")
    await console.click(owner, "Salesbot run")
    await console.send(owner, "not a number")
    assert "as a number" in console.text(owner)
    await console.send(owner, "77")
    assert [b["text"] for b in console.fake.last(owner.id).buttons()][:1] == ["AI reply"]  # text fields only
    await console.click(owner, "AI reply")
    text = console.text(owner)
    assert "Seller" in text and "{{lead.cf.501}}" in text and "Salesbot 77" in text
    assert "add_message" in text  # the webhook events to tick by hand
    account = await storage.kommo_accounts.for_org(org_id)
    assert (account.salesbot_bot_id, account.reply_field_id) == (77, 501)
    assert (await storage.agents.get(org_id, agent.id)).delivery_mode == DeliveryMode.SALESBOT_RUN


async def test_delivery_setup_refused_for_a_missing_bot(console, console_services, fake_kommo):
    """The bot id is checked in Kommo's bots list (two pages of 250 here): an id Kommo does not have is
    refused with the account's bots named, and nothing is saved."""
    storage = console_services.storage
    owner = user(3007, language_code="en")
    membership, fake_acc = await _connected_org(console_services, fake_kommo, owner)
    fake_acc.bots.update({i: {"id": i, "name": f"Bot {i}", "is_active": True} for i in range(1000, 1300)})
    agent = await create_agent(storage, membership.org.id, "Seller", "Sell.")
    await console.send(owner, "/kommo")
    await console.click(owner, "Delivery set-up")
    await console.click(owner, "Seller")
    await console.click(owner, "Salesbot run")
    await console.send(owner, "4242")
    await console.click(owner, "AI reply")
    text = console.text(owner)
    assert "Kommo has no Salesbot 4242" in text and "77 AI reply sender" in text
    assert sum(r[2] == "/api/v4/bots" for r in fake_kommo.requests) == 2  # 301 bots: both pages read
    account = await storage.kommo_accounts.for_org(membership.org.id)
    assert account.salesbot_bot_id is None and account.reply_field_id is None
    assert (await storage.agents.get(membership.org.id, agent.id)).delivery_mode == DeliveryMode.NOTE_DRAFT
    # A bot on the second page of the list is found.
    await console.send(owner, "/kommo")
    await console.click(owner, "Delivery set-up")
    await console.click(owner, "Seller")
    await console.click(owner, "Salesbot run")
    await console.send(owner, "1299")
    await console.click(owner, "AI reply")
    assert "Salesbot 1299" in console.text(owner)
    assert (await storage.kommo_accounts.for_org(membership.org.id)).salesbot_bot_id == 1299
    # Status checks the chosen bot live: deleted in Kommo, the screen says so in words.
    del fake_acc.bots[1299]
    await console.send(owner, "/kommo")
    assert "Seller" in console.text(owner) and "the Salesbot is gone from Kommo" in console.text(owner)
