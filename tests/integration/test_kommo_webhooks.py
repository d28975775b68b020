"""Webhook routes end to end: aiohttp app on a test server -> intake -> nx-27017 + Celery broker."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from urllib.parse import urlencode

import jwt
import pytest

from core.kommo.errors import InvalidWebhook
from core.kommo.intake.parser import event_data
from core.kommo.intake.signatures import chats_body_signature, verify_chats_signature
from core.models.events import EventStatus
from tests.conftest import shared_path
from tests.fakes.kommo_wire import CHANNEL_SECRET
from tests.fixtures.kommo import SALESBOT_SECRET, inbound_queue_length

FORM = {"Content-Type": "application/x-www-form-urlencoded"}




def message_body(msg_id: str, text: str = "Здравствуйте! Сколько стоит?", account_id: int | None = None) -> bytes:
    pairs = [("account[subdomain]", "acme"), ("message[add][0][id]", msg_id),
             ("message[add][0][chat_id]", "chat-1"), ("message[add][0][talk_id]", "7"),
             ("message[add][0][contact_id]", "55"), ("message[add][0][text]", text),
             ("message[add][0][created_at]", str(int(time.time()))), ("message[add][0][element_type]", "2"),
             ("message[add][0][entity_type]", "lead"), ("message[add][0][element_id]", "100"),
             ("message[add][0][entity_id]", "100"), ("message[add][0][type]", "incoming"),
             ("message[add][0][author][id]", "a-1"), ("message[add][0][author][type]", "external"),
             ("message[add][0][origin]", "waba")]
    if account_id:
        pairs.insert(1, ("account[id]", str(account_id)))
    return urlencode(pairs).encode()


async def broker_messages(redis_client) -> list[dict]:
    raw = await redis_client.lrange("inbound", 0, -1)
    return [json.loads(m) for m in raw]


async def test_valid_then_duplicate(web_client, connected, kommo, core_services, redis_client):
    org, account, fake_acc = connected
    url = f"/webhooks/kommo/{kommo.connections.hook_token(account)}"
    body = message_body("m-1", account_id=fake_acc.id)
    resp = await web_client.post(url, data=body, headers=FORM)
    assert resp.status == 200 and (await resp.json())["accepted"] == 1
    events = await core_services.storage.events.list(org.id)
    assert len(events) == 1 and events[0].kind == "message.add" and events[0].raw_body == body.decode()
    assert event_data(events[0])["text"] == "Здравствуйте! Сколько стоит?" and events[0].payload["lead_id"] == 100
    msgs = [m for m in await broker_messages(redis_client)
            if json.loads(base64.b64decode(m["body"]))[0][0] == org.id]
    assert len(msgs) == 1 and msgs[0]["headers"]["task"] == "inbound.process_event"
    assert json.loads(base64.b64decode(msgs[0]["body"]))[0] == [org.id, events[0].id]
    for _ in range(50):  # QUEUED is bookkeeping written right after the answer
        if (await core_services.storage.events.get(org.id, events[0].id)).status == EventStatus.QUEUED:
            break
        await asyncio.sleep(0.02)
    assert (await core_services.storage.events.get(org.id, events[0].id)).status == EventStatus.QUEUED

    again = await web_client.post(url, data=body, headers=FORM)  # Kommo retries the same hook
    assert again.status == 200 and (await again.json())["duplicates"] == 1
    assert await core_services.storage.events.count(org.id) == 1
    assert await inbound_queue_length(redis_client, org.id) == 1


async def test_concurrent_requests_are_group_committed(web_client, connected, kommo, core_services, redis_client):
    org, account, _ = connected
    url = f"/webhooks/kommo/{kommo.connections.hook_token(account)}"
    resps = await asyncio.gather(*(web_client.post(url, data=message_body(f"c-{i}"), headers=FORM)
                                   for i in range(100)))
    assert [r.status for r in resps] == [200] * 100
    assert await core_services.storage.events.count(org.id) == 100
    assert await inbound_queue_length(redis_client, org.id) == 100
    committer = web_client.server.app[__import__("web.routes.kommo", fromlist=["KOMMO"]).KOMMO].intake.committer
    assert committer.batches < 100  # several requests shared one insert_many


@pytest.mark.parametrize("body,headers,reason", [
    (b'{"message": 1}', {"Content-Type": "application/json"}, "expected form-encoded"),
    (b"message%5Badd%5D%5B0%5D%5Bid%5D=%FF%FE&account%5Bsubdomain%5D=acme", FORM, "broken encoding"),
    (b"message%5Badd%5D%5B0%5D%5Bid%5D=1", FORM, "no account"),
    (b"hello", FORM, "not a form"),
])
async def test_not_a_webhook_is_4xx_with_reason_and_nothing_stored(web_client, connected, kommo, core_services,
                                                                   redis_client, body, headers, reason):
    org, account, _ = connected
    resp = await web_client.post(f"/webhooks/kommo/{kommo.connections.hook_token(account)}", data=body,
                                 headers=headers)
    assert resp.status == 400 and reason in (await resp.json())["error"]
    assert await core_services.storage.events.count(org.id) == 0
    assert await inbound_queue_length(redis_client, org.id) == 0


async def test_webhook_of_another_account_is_refused(web_client, connected, kommo, core_services):
    org, account, fake_acc = connected
    resp = await web_client.post(f"/webhooks/kommo/{kommo.connections.hook_token(account)}",
                                 data=message_body("x", account_id=fake_acc.id + 1), headers=FORM)
    assert resp.status == 400 and "another" in (await resp.json())["error"]


async def test_unknown_token_is_404(web_client, connected, kommo):
    org, account, _ = connected
    real = kommo.connections.hook_token(account)
    for token in ("nope", real[:-1] + ("A" if real[-1] != "A" else "B"), "x" * 300):
        resp = await web_client.post(f"/webhooks/kommo/{token}", data=message_body("m"), headers=FORM)
        assert resp.status == 404


async def test_oversized_body_is_413_declared_or_streamed(web_client, connected, kommo, core_services):
    org, account, _ = connected
    url = f"/webhooks/kommo/{kommo.connections.hook_token(account)}"
    limit = core_services.settings.kommo.max_webhook_body_bytes
    big = message_body("big", text="x" * (limit + 10))
    resp = await web_client.post(url, data=big, headers=FORM)
    assert resp.status == 413

    async def stream():  # no Content-Length: chunked, cut off while streaming
        for _ in range(limit // 65536 + 3):
            yield b"a" * 65536
    resp = await web_client.post(url, data=stream(), headers=FORM)
    assert resp.status == 413
    assert await core_services.storage.events.count(org.id) == 0


async def test_kinds_not_acted_on_are_stored_and_counted_as_ignored(web_client, connected, kommo, core_services,
                                                                   redis_client):
    """Who Kommo says wrote an event decides nothing at intake (our own writes are recognised
    from the action journal by the worker); kinds the engine does not act on are ignored."""
    org, account, fake_acc = connected
    bot = fake_acc.current_user_id
    body = urlencode([("account[subdomain]", "acme"), ("account[id]", str(fake_acc.id)),
                      ("leads[status][0][id]", "100"), ("leads[status][0][status_id]", "4002"),
                      ("leads[status][0][modified_user_id]", str(bot)), ("leads[status][0][updated_at]", "1"),
                      ("contacts[update][0][id]", "55"), ("contacts[update][0][type]", "contact"),
                      ("contacts[update][0][updated_at]", "2"), ("contacts[update][0][modified_user_id]", "9"),
                      ("leads[add][0][id]", "101"), ("leads[add][0][updated_at]", "3")]).encode()
    resp = await web_client.post(f"/webhooks/kommo/{kommo.connections.hook_token(account)}", data=body, headers=FORM)
    assert resp.status == 200
    assert await resp.json() == {"ok": True, "accepted": 1, "duplicates": 0, "unhandled": 0, "ignored": 2}
    by_kind = {e.kind: (e.status, e.error) for e in await core_services.storage.events.list(org.id)}
    assert by_kind == {"lead.status": (EventStatus.QUEUED, None),
                       "contact.update": (EventStatus.IGNORED, "not acted on: contact.update"),
                       "lead.add": (EventStatus.IGNORED, "not acted on: lead.add")}
    assert await inbound_queue_length(redis_client, org.id) == 1


def salesbot_jwt(alg: str, account_id: int, secret: str = SALESBOT_SECRET, **claims) -> str:
    return jwt.encode({"account_id": account_id, "entity_id": 100, "entity_type": 2, "exp": int(time.time()) + 300,
                       **claims}, secret, algorithm=alg)


@pytest.mark.parametrize("alg,as_json", [("HS256", True), ("HS512", False)])
async def test_salesbot_widget_request(web_client, connected, kommo, core_services, redis_client, fake_kommo,
                                       alg, as_json):
    org, account, fake_acc = connected
    return_url = fake_kommo.open_continue(fake_acc, lead_id=100)
    doc = {"token": salesbot_jwt(alg, fake_acc.id), "data": {"message": "Привет", "lead_id": "100"},
           "return_url": return_url}
    url = f"/kommo/salesbot/{kommo.connections.hook_token(account)}"
    if as_json:
        resp = await web_client.post(url, json=doc)
    else:
        form = [("token", doc["token"]), ("data[message]", "Привет"), ("data[lead_id]", "100"),
                ("return_url", return_url)]
        resp = await web_client.post(url, data=urlencode(form), headers=FORM)
    assert resp.status == 200 and (await resp.json())["accepted"] == 1
    (event,) = await core_services.storage.events.list(org.id)
    assert event.kind == "salesbot.widget_request" and event.payload["return_url"] == return_url
    assert event.payload["lead_id"] == 100 and event.payload["data"]["message"] == "Привет"
    assert await inbound_queue_length(redis_client, org.id) == 1
    bad = await web_client.post(url, json={**doc, "token": salesbot_jwt(alg, fake_acc.id, secret="w" * 64)})
    assert bad.status == 400 and "signature" in (await bad.json())["error"]
    none_alg = jwt.encode({"account_id": fake_acc.id, "exp": int(time.time()) + 60}, None, algorithm="none")
    refused = await web_client.post(url, json={**doc, "token": none_alg})
    assert refused.status == 400


async def test_chats_hook_signature_checked_first(web_client, connected, kommo, core_services, redis_client):
    org, account, _ = connected
    await core_services.storage.kommo_accounts.update(org.id, account.id, {"chats_scope_id": "scope-1"})
    body = shared_path("fixtures", "kommo", "chats_webhooks", "docs_v2_message_list_message.json").read_bytes()
    good = chats_body_signature(body, CHANNEL_SECRET)
    resp = await web_client.post("/kommo/chats/scope-1", data=body, headers={"X-Signature": good})
    assert resp.status == 200 and (await resp.json())["accepted"] == 1
    # a bad signature is refused before the scope is even looked up (unknown scope: still 400)
    resp = await web_client.post("/kommo/chats/unknown", data=body, headers={"X-Signature": "0" * 40})
    assert resp.status == 400
    resp = await web_client.post("/kommo/chats/unknown", data=body, headers={"X-Signature": good})
    assert resp.status == 404
    typing = shared_path("fixtures", "kommo", "chats_webhooks", "docs_typing.json").read_bytes()
    resp = await web_client.post("/kommo/chats/scope-1", data=typing,
                                 headers={"X-Signature": chats_body_signature(typing, CHANNEL_SECRET)})
    assert (await resp.json())["unhandled"] == 1
    assert await inbound_queue_length(redis_client, org.id) == 1


def test_chats_signature_matches_docs_samples():
    folder = shared_path("fixtures", "kommo", "chats_webhooks")
    derived = json.loads((folder / "signatures.derived.json").read_text())
    for name, sig in derived["signatures"].items():
        verify_chats_signature((folder / name).read_bytes(), sig["x_signature_hmac_sha1_hex"], derived["secret"])
        with pytest.raises(InvalidWebhook):
            verify_chats_signature((folder / name).read_bytes() + b" ", sig["x_signature_hmac_sha1_hex"],
                                   derived["secret"])
