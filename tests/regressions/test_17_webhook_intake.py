"""Issue 17: one malformed webhook failed every tenant's batch (an integer beyond 64 bits raised
a BSON overflow inside the shared group commit), one body could store its raw text once per item,
floods and guessed tokens had no limit, and a few malformed inputs answered 500.

Each bad request is now refused alone with a 4xx and its reason (kept for the operators), the
rest of a failing commit is committed one by one, and each account has its own budget."""

from __future__ import annotations

import asyncio
import base64
import json
from urllib.parse import urlencode

import jwt
import pytest

from core.ids import new_id
from core.kommo.errors import InvalidWebhook
from core.kommo.intake.group_commit import GroupCommitter
from core.kommo.intake.parser import event_data
from core.models.events import EventStatus, WebhookEvent
from tests.fixtures.engine import message_body
from tests.fixtures.kommo import SALESBOT_SECRET, inbound_queue_length
from tests.fixtures.tenants import FORM

HUGE = str(2**64 + 5)


async def _stored(services, org_id: str) -> int:
    return await services.storage.events.count(org_id)


async def test_an_id_beyond_int64_is_refused_alone_while_the_other_tenant_is_stored(two_tenants, redis_client):
    t = two_tenants
    bad = [t.a.message(f"bad-{i}", **{"message[add][0][entity_id]": HUGE}) for i in range(10)]
    good = [t.b.message(f"good-{i}") for i in range(30)]
    posts = [t.client.post(t.a.url, data=b, headers=FORM) for b in bad]
    posts += [t.client.post(t.b.url, data=b, headers=FORM) for b in good]
    answers = await asyncio.gather(*posts)
    bad_answers, good_answers = answers[:10], answers[10:]
    assert [r.status for r in bad_answers] == [400] * 10
    assert "out of range" in (await bad_answers[0].json())["error"]
    assert [r.status for r in good_answers] == [200] * 30
    assert await _stored(t.services, t.b.org_id) == 30
    assert await inbound_queue_length(redis_client, t.b.org_id) == 30
    assert await _stored(t.services, t.a.org_id) == 0
    # Stored as rejected, with the reason, once per distinct body.
    rejected = await t.services.storage.rejections.list(t.a.org_id)
    assert len(rejected) == 10 and all("out of range" in r["reason"] for r in rejected)
    assert {r["count"] for r in rejected} == {1}
    again = await t.client.post(t.a.url, data=bad[0], headers=FORM)  # Kommo retries: counted, not piled up
    assert again.status == 400
    assert sorted(r["count"] for r in await t.services.storage.rejections.list(t.a.org_id))[-1] == 2


@pytest.mark.parametrize("field,value,reason", [
    ("account[id]", "12abc", "account[id] is not a number"),
    ("account[id]", HUGE, "account[id] out of range"),
    ("message[add][0][talk_id]", "-3", "out of range"),
    ("message[add][0][text]", "x" * (64 * 1024 + 1), "longer than"),
])
async def test_malformed_fields_are_4xx_with_the_reason(two_tenants, field, value, reason):
    t = two_tenants
    resp = await t.client.post(t.a.url, data=t.a.message("m-1", **{field: value}), headers=FORM)
    assert resp.status == 400 and reason in (await resp.json())["error"]
    assert await _stored(t.services, t.a.org_id) == 0


async def test_a_commit_failing_on_one_document_commits_the_others_one_by_one(storage, celery_queue, redis_client):
    """A document BSON cannot hold (built past the parser's checks) fails only its own request."""
    a, b = await storage.orgs.create("A"), await storage.orgs.create("B")

    def event(org_id: str, key: str, **payload) -> WebhookEvent:
        return WebhookEvent(_id=new_id("evt"), org_id=org_id, source="kommo", kind="message.add", dedupe_key=key,
                            raw_body="x", payload=payload)

    committer = GroupCommitter(storage.events, celery_queue, max_batch=64, max_inflight=1)
    requests = [[event(b.id, f"b:{i}")] for i in range(6)]
    requests.insert(3, [event(a.id, "a:poison", lead_id=2**70)])
    results = await asyncio.gather(*(committer.submit(r) for r in requests), return_exceptions=True)
    await committer.drain()
    assert isinstance(results[3], InvalidWebhook) and "could not be stored" in results[3].reason
    assert [r for i, r in enumerate(results) if i != 3] == [[True]] * 6
    assert await storage.events.count(b.id) == 6 and await storage.events.count(a.id) == 0
    assert await inbound_queue_length(redis_client, b.id) == 6


def _many(fake_acc, n: int) -> bytes:
    pairs = [("account[subdomain]", fake_acc.subdomain), ("account[id]", str(fake_acc.id))]
    for i in range(n):
        pairs += [(f"leads[status][{i}][id]", str(1000 + i)), (f"leads[status][{i}][status_id]", "142"),
                  (f"leads[status][{i}][pipeline_id]", "7"), (f"leads[status][{i}][updated_at]", "1764000000"),
                  (f"leads[status][{i}][name]", f"Lead {i} " + "n" * 200)]
    return urlencode(pairs).encode()


@pytest.mark.intake_limits(webhook_max_items=50)
async def test_items_are_capped_and_each_event_stores_only_its_own_part(two_tenants):
    t = two_tenants
    over = await t.client.post(t.a.url, data=_many(t.a.fake_acc, 51), headers=FORM)
    assert over.status == 413 and "more than 50 items" in (await over.json())["error"]
    assert await _stored(t.services, t.a.org_id) == 0
    body = _many(t.a.fake_acc, 50)
    at_cap = await t.client.post(t.a.url, data=body, headers=FORM)
    assert at_cap.status == 200
    events = await t.services.storage.events.list(t.a.org_id, {}, limit=100)
    assert len(events) == 50  # events stored per request at the cap
    stored_bytes = sum(len(e.raw_body) for e in events)
    assert stored_bytes < 1.5 * len(body)  # was 50 x the body
    by_id = {event_data(e)["id"]: event_data(e) for e in events}
    assert sorted(by_id) == sorted(str(1000 + i) for i in range(50))
    assert by_id["1007"]["name"].startswith("Lead 7 ")


@pytest.mark.intake_limits(webhook_events_per_minute=20)
async def test_a_flooding_account_gets_429_and_the_other_is_untouched(two_tenants):
    t = two_tenants
    flood = [t.client.post(t.a.url, data=t.a.message(f"f-{i}"), headers=FORM) for i in range(60)]
    calm = [t.client.post(t.b.url, data=t.b.message(f"c-{i}"), headers=FORM) for i in range(15)]
    answers = await asyncio.gather(*flood, *calm)
    flood_status, calm_status = [r.status for r in answers[:60]], [r.status for r in answers[60:]]
    assert flood_status.count(200) == 20 and flood_status.count(429) == 40
    assert calm_status == [200] * 15
    refused = next(r for r in answers[:60] if r.status == 429)
    assert int(refused.headers["Retry-After"]) >= 1 and "per minute" in (await refused.json())["error"]
    assert t.intake.limits.events.refused[t.a.org_id] == 40  # counted
    assert await _stored(t.services, t.a.org_id) == 20 and await _stored(t.services, t.b.org_id) == 15


@pytest.mark.intake_limits(webhook_unknown_tokens_per_minute=5)
async def test_unknown_tokens_are_rate_limited_but_a_known_token_still_works(two_tenants):
    t = two_tenants
    assert (await t.client.post(t.a.url, data=t.a.message("known-1"), headers=FORM)).status == 200
    statuses = [(await t.client.post(f"/webhooks/kommo/guess{i:04d}", data=b"x=1", headers=FORM)).status
                for i in range(12)]
    assert statuses[:5] == [404] * 5 and set(statuses[5:]) == {429}
    t.intake._cache.clear()  # the known token's cache entry expired: its lookup is still allowed
    assert (await t.client.post(t.a.url, data=t.a.message("known-2"), headers=FORM)).status == 200


async def test_non_ascii_x_signature_is_400(two_tenants):
    t = two_tenants
    await t.services.storage.kommo_accounts.collection.update_one({"org_id": t.a.org_id},
                                                                  {"$set": {"chats_scope_id": "scope-a"}})
    for signature in ("подпись", "ab\u00e9cd", "\u200b"):
        resp = await t.client.post("/kommo/chats/scope-a", data=b'{"message": {}}',
                                   headers={"X-Signature": signature.encode().decode("latin-1")})
        assert resp.status == 400 and (await resp.json())["error"] == "bad X-Signature"


@pytest.mark.parametrize("state", [
    "!!!.???",  # not base64 at all
    base64.urlsafe_b64encode(b'{"k":"x","e":1,"n":"a"}').decode() + ".*&^",  # bad signature base64
    base64.urlsafe_b64encode(b"[1,2]").decode() + ".AAAA",  # claims not an object
    "a.b.c",
    "ZZZZ" * 500 + ".x",  # long, still within a request line
])
async def test_bad_oauth_state_is_400(two_tenants, state):
    resp = await two_tenants.client.get("/oauth/kommo/callback", params={"code": "c", "state": state,
                                                                         "referer": "x.kommo.com"})
    assert resp.status == 400 and "Link is not valid" in await resp.text()


async def test_hostile_json_bodies_on_salesbot_and_chats_are_400(two_tenants):
    t = two_tenants
    token = t.a.url.rsplit("/", 1)[1]
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    for body in (deep, b'{"token": "x", "data": {"n": ' + HUGE.encode() + b"}}", b"[1]"):
        resp = await t.client.post(f"/kommo/salesbot/{token}", data=body, headers={"Content-Type": "application/json"})
        assert resp.status == 400, body[:40]


async def test_a_poison_event_is_parked_with_the_reason_and_an_alert(shop):
    """An event whose every run fails (here: its stored body no longer holds it) is tried a
    bounded number of times, then parked with the reason; operators get one alert."""
    storage = shop.services.storage
    [event_id] = await shop.event(shop_message(shop, "m-poison"))
    await storage.events.collection.update_one({"_id": event_id}, {"$set": {"raw_body": "account%5Bid%5D=1"}})
    cap = shop.engine.deps.max_event_attempts
    for _ in range(cap):
        with pytest.raises(InvalidWebhook):
            await shop.engine.process_event(shop.org_id, event_id)
    assert await shop.engine.process_event(shop.org_id, event_id) == "parked"
    parked = await storage.events.get(shop.org_id, event_id)
    assert parked.status == EventStatus.PARKED and f"after {cap} attempts" in parked.error
    assert "InvalidWebhook" in parked.error
    assert await shop.engine.process_event(shop.org_id, event_id) == "already_done"  # never retried again
    alerts = [a for a in await storage.notifications.pending(shop.org_id) if a["kind"] == "event_failed"]
    assert len(alerts) == 1 and alerts[0]["params"]["parked"] is True


def shop_message(shop, msg_id: str) -> bytes:
    return message_body(shop.fake_acc, msg_id, "Hi", chat_id=f"c-{msg_id}", lead_id=shop.lead_id)


async def test_a_salesbot_request_without_a_lead_is_refused_not_keyed_lead_none(shop, fake_kommo):
    """`lead: null` (a bot on a contact) used to become the conversation `lead:None`, merging
    unrelated customers: it is refused with the reason, and so is a lead id beyond int64."""
    kommo = await shop.services.kommo()
    account = await shop.services.storage.kommo_accounts.for_org(shop.org_id)
    token = kommo.connections.hook_token(account)
    return_url = fake_kommo.open_continue(shop.fake_acc, lead_id=shop.lead_id)
    for claims, data, reason in (
            ({"entity_id": 701, "entity_type": 1}, {"message": "hello", "contact_id": "701"}, "names no lead"),
            ({"entity_id": 2**64, "entity_type": 2}, {"message": "hello"}, "out of range")):
        claims = {"account_id": shop.fake_acc.id, "exp": 2**31, **claims}
        doc = {"token": jwt.encode(claims, SALESBOT_SECRET, algorithm="HS256"), "lead": None, "data": data,
               "return_url": return_url}
        with pytest.raises(InvalidWebhook, match=reason):
            await kommo.intake.salesbot(token, json.dumps(doc).encode(), "application/json")
    assert await shop.services.storage.conversations.list(shop.org_id, {"conversation_key": "lead:None"}) == []
    assert await shop.services.storage.events.count(shop.org_id) == 0
