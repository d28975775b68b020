"""Connecting accounts: long-lived token, OAuth callback over HTTP, sync marking gone items,
and no plaintext secret anywhere in Mongo."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from core.errors import InvalidInput
from core.kommo.intake.parser import SUBSCRIBED_EVENTS
from core.models.kommo import AuthKind, ConnectionStatus


async def dump(db) -> str:
    parts = []
    for name in await db.list_collection_names():
        async for doc in db[name].find({}):
            parts.append(repr(doc))
    return "\n".join(parts)


async def test_long_lived_connect_syncs_and_stores_no_plaintext(kommo, core_services, fake_kommo):
    storage = core_services.storage
    org = await storage.orgs.create("Acme")
    fake_acc = fake_kommo.add_account("acme")
    token = fake_kommo.book.issue_long_lived(fake_acc.id)
    result = await kommo.connections.connect_long_lived(org.id, "acme.kommo.com", token)
    acc = result.account
    assert acc.auth_kind == AuthKind.LONG_LIVED and acc.status == ConnectionStatus.ACTIVE
    assert acc.account_id == fake_acc.id and acc.amojo_id == fake_acc.amojo_id
    assert acc.bot_user_id == fake_acc.current_user_id
    hook = kommo.connections.hook_token(acc)
    assert result.webhook_url == f"https://agent.example/webhooks/kommo/{hook}" and len(hook) >= 43
    assert result.sync.pipelines == 2 and result.sync.users == 2
    text = await dump(storage.db)
    assert token not in text and hook not in text
    # reconnecting keeps the account and the webhook URL
    again = await kommo.connections.connect_long_lived(org.id, "acme", token)
    assert again.account.id == acc.id and again.webhook_url == result.webhook_url


async def test_connect_registers_our_webhook_for_the_events_we_handle(kommo, core_services, fake_kommo):
    org = await core_services.storage.orgs.create("Acme")
    fake_acc = fake_kommo.add_account("acme")
    result = await kommo.connections.connect_long_lived(org.id, "acme", fake_kommo.book.issue_long_lived(fake_acc.id))
    assert result.webhook_registered and result.webhook_note is None
    assert [(w["destination"], w["settings"]) for w in fake_acc.webhooks] == [(result.webhook_url, list(SUBSCRIBED_EVENTS))]
    assert {"add_message", "add_outgoing_message", "status_lead"} <= set(SUBSCRIBED_EVENTS)
    # Reconnecting replaces the subscription instead of adding a second one.
    await kommo.connections.connect_long_lived(org.id, "acme", fake_kommo.book.issue_long_lived(fake_acc.id))
    assert len(fake_acc.webhooks) == 1


async def test_connect_when_kommo_refuses_the_webhook_keeps_the_account_active(kommo, core_services, fake_kommo):
    org = await core_services.storage.orgs.create("Acme")
    fake_acc = fake_kommo.add_account("acme")
    fake_acc.webhooks_forbidden = True  # the token's user is not an admin
    result = await kommo.connections.connect_long_lived(org.id, "acme", fake_kommo.book.issue_long_lived(fake_acc.id))
    assert not result.webhook_registered and "refused" in result.webhook_note
    assert result.account.status == ConnectionStatus.ACTIVE  # a 403 here is not a blocked account
    assert (await core_services.storage.kommo_accounts.for_org(org.id)).status == ConnectionStatus.ACTIVE


async def test_connect_with_a_local_public_url_says_to_paste_the_webhook(kommo, core_services, fake_kommo):
    org = await core_services.storage.orgs.create("Acme")
    fake_acc = fake_kommo.add_account("acme")
    kommo.connections.settings = kommo.connections.settings.model_copy(update={"public_base_url": "http://127.0.0.1:8080"})
    result = await kommo.connections.connect_long_lived(org.id, "acme", fake_kommo.book.issue_long_lived(fake_acc.id))
    assert not result.webhook_registered and "local address" in result.webhook_note
    assert result.webhook_url.startswith("http://127.0.0.1:8080/webhooks/kommo/") and fake_acc.webhooks == []


async def test_long_lived_connect_rejects_bad_token_and_stores_nothing(kommo, core_services, fake_kommo):
    org = await core_services.storage.orgs.create("Acme")
    fake_kommo.add_account("acme")
    with pytest.raises(InvalidInput, match="rejected the token"):
        await kommo.connections.connect_long_lived(org.id, "acme", "not-a-token")
    with pytest.raises(InvalidInput, match="not a Kommo account"):
        await kommo.connections.connect_long_lived(org.id, "www.kommo.com", "x")
    assert await core_services.storage.kommo_accounts.for_org(org.id) is None


async def oauth_state(kommo, org_id: str) -> str:
    return parse_qs(urlsplit(await kommo.oauth.authorize_url(org_id, 7)).query)["state"][0]


async def test_oauth_callback_happy_path_then_replay(web_client, kommo, core_services, fake_kommo):
    storage = core_services.storage
    org = await storage.orgs.create("Acme")
    fake_acc = fake_kommo.add_account("acme")
    state = await oauth_state(kommo, org.id)
    params = {"code": fake_kommo.book.issue_code(fake_acc.id), "state": state, "referer": "acme.kommo.com",
              "client_id": fake_kommo.client_id}
    resp = await web_client.get("/oauth/kommo/callback", params=params)
    body = await resp.text()
    assert resp.status == 200 and "Kommo подключён" in body and "Kommo connected" in body
    acc = await storage.kommo_accounts.for_org(org.id)
    assert acc.auth_kind == AuthKind.OAUTH and acc.expires_at is not None and acc.account_id == fake_acc.id
    assert fake_kommo.code_calls == 1
    text = await dump(storage.db)
    assert kommo.tokens.secret(acc, "refresh_token") not in text and kommo.tokens.secret(acc, "access_token") not in text
    replay = await web_client.get("/oauth/kommo/callback", params=params)
    assert replay.status == 400 and "already used" in await replay.text()
    assert fake_kommo.code_calls == 1


async def test_oauth_access_denied_bad_state_and_bad_referer(web_client, kommo, core_services, fake_kommo):
    org = await core_services.storage.orgs.create("Acme")
    denied = await web_client.get("/oauth/kommo/callback",
                                  params={"error": "access_denied", "state": await oauth_state(kommo, org.id)})
    assert denied.status == 200 and "Access denied" in await denied.text()
    state = await oauth_state(kommo, org.id)
    forged = state[:-3] + ("AAA" if not state.endswith("AAA") else "BBB")
    bad = await web_client.get("/oauth/kommo/callback", params={"code": "c", "state": forged, "referer": "a.kommo.com"})
    assert bad.status == 400 and "signature" in await bad.text()
    missing = await web_client.get("/oauth/kommo/callback", params={"code": "c"})
    assert missing.status == 400
    evil = await web_client.get("/oauth/kommo/callback",
                                params={"code": "c", "state": state, "referer": "evil.example.com"})
    assert evil.status == 400
    assert await core_services.storage.kommo_accounts.for_org(org.id) is None
    assert fake_kommo.code_calls == 0


async def test_sync_marks_deleted_stage_and_user_gone(kommo, connected, core_services):
    org, account, fake_acc = connected
    catalog = core_services.storage.kommo_catalog
    fake_acc.pipelines[0]["_embedded"]["statuses"] = [s for s in fake_acc.pipelines[0]["_embedded"]["statuses"]
                                                      if s["id"] != 4003]
    removed_user = fake_acc.users.pop(1)
    removed_field = fake_acc.custom_fields["leads"].pop(1)
    await kommo.sync_org(org.id)
    sales = await catalog.pipeline(org.id, 3001)
    assert sales.stage(4003).gone is True and sales.stage(4002).gone is False
    users = {u.user_id: u for u in await catalog.users(org.id, include_gone=True)}
    assert users[removed_user["id"]].gone is True
    assert [u.user_id for u in await catalog.users(org.id)] == [fake_acc.users[0]["id"]]
    kept = [f["id"] for f in fake_acc.custom_fields["leads"]]
    assert [f.field_id for f in await catalog.fields(org.id, "leads")] == kept and removed_field["id"] not in kept
