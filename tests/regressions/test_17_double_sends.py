"""Issue 17: after a crash between Kommo's 200 and our record, `salesbot_run` and `chats_api`
replies were sent again; 429 retries could outlast the 120 s staleness rule; and a reply decided
before a manager took the conversation over was still sent.

Now the SENDING record (the intent) is written before the call, an unknown outcome where Kommo
cannot be asked becomes MAYBE_SENT with an operator alert instead of a resend, a call's retries
end within its budget, and the conversation is re-read right before the customer-visible call."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.clock import utcnow
from core.conversations.errors import RetryLater
from core.kommo.actions.journal import run_journaled
from core.kommo.errors import KommoRateLimited, KommoUnavailable, MaybeSent
from core.kommo.service import build_kommo
from core.models.agent import DeliveryMode
from core.models.conversation import ConversationState
from core.models.events import ActionState
from tests.fixtures.engine import message_body
from tests.fixtures.kommo import kommo_settings


async def _crashed_attempt(storage, org_id: str, key: str, kind: str, minutes_ago: float) -> None:
    """What a worker killed right after Kommo answered 200 leaves: the intent, still SENDING."""
    at = utcnow() - timedelta(minutes=minutes_ago)
    await storage.actions.collection.insert_one({
        "_id": f"act_{key}", "org_id": org_id, "idempotency_key": key, "kind": kind, "params": {},
        "state": "sending", "dry_run": False, "result": {}, "created_at": at, "updated_at": at})


async def test_a_salesbot_run_reply_of_unknown_outcome_is_never_resent(kommo, connected, core_services):
    org, account, fake_acc = connected
    storage = core_services.storage
    await storage.kommo_accounts.update(org.id, account.id, {"reply_field_id": 501, "salesbot_bot_id": 77})
    lead = next(iter(fake_acc.leads))
    await _crashed_attempt(storage, org.id, "reply:run1", "reply.salesbot_run", minutes_ago=10)
    with pytest.raises(MaybeSent):
        await kommo.actions.send_reply(org.id, lead_id=lead, text="Hello!", mode=DeliveryMode.SALESBOT_RUN,
                                       idempotency_key="reply:run1")
    record = await storage.actions.by_key(org.id, "reply:run1")
    assert record.state == ActionState.MAYBE_SENT
    assert fake_acc.bot_runs == []  # not run a second time
    with pytest.raises(MaybeSent):  # and never later either
        await kommo.actions.send_reply(org.id, lead_id=lead, text="Hello!", mode=DeliveryMode.SALESBOT_RUN,
                                       idempotency_key="reply:run1")
    assert fake_acc.bot_runs == []


async def test_a_timeout_where_kommo_cannot_be_asked_is_maybe_sent_at_once(core_services):
    storage = core_services.storage
    org = await storage.orgs.create("T")

    async def times_out() -> dict:
        raise KommoUnavailable("Kommo did not answer: TimeoutError")

    with pytest.raises(MaybeSent):
        await run_journaled(storage.actions, org.id, kind="reply.chats_api", key="k1", params={},
                            perform=times_out, can_resend=False)
    assert (await storage.actions.by_key(org.id, "k1")).state == ActionState.MAYBE_SENT
    # A call Kommo can be asked about (or that is harmless twice) stays SENDING for a later check.
    with pytest.raises(KommoUnavailable):
        await run_journaled(storage.actions, org.id, kind="reply.note_draft", key="k2", params={},
                            perform=times_out)
    assert (await storage.actions.by_key(org.id, "k2")).state == ActionState.SENDING


async def test_a_maybe_sent_turn_alerts_operators_and_hands_off_without_resending(shop):
    storage = shop.services.storage
    account = await storage.kommo_accounts.for_org(shop.org_id)
    await storage.kommo_accounts.update(shop.org_id, account.id, {"reply_field_id": 501, "salesbot_bot_id": 77})
    await storage.agents.update(shop.org_id, shop.agent.id, {"delivery_mode": DeliveryMode.SALESBOT_RUN.value})
    msg = await shop.customer_says("Do you deliver to Kazan?")
    await _crashed_attempt(storage, shop.org_id, f"turn_{msg}:reply", "reply.salesbot_run", minutes_ago=10)
    conv = await shop.conversation()
    assert await shop.engine.run_turn(shop.org_id, conv.id, msg) == "maybe_sent"
    assert shop.fake_acc.bot_runs == []
    alerts = [a for a in await storage.notifications.pending(shop.org_id) if a["kind"] == "reply_failed"]
    assert len(alerts) == 1 and alerts[0]["params"]["maybe_sent"] is True
    assert "may have reached the customer" in alerts[0]["params"]["error"]
    assert (await shop.conversation()).state == ConversationState.HANDED_OFF


async def test_retries_end_within_the_budget(connected, core_services, fake_kommo):
    """Kommo answers 429 (Retry-After 1 s) to everything: with a 1.5 s budget the call gives up
    after its second try instead of retrying five times for ~150 s."""
    org, account, _ = connected
    settings = kommo_settings(fake_kommo, retry_budget_s=1.5)
    service = build_kommo(settings, storage=core_services.storage, redis=core_services.redis,
                          keyring=core_services.keyring)
    fake_kommo.fault_rate, fake_kommo.fault_kinds = 1.0, ["429"]
    before = len(fake_kommo.requests)
    try:
        with pytest.raises(KommoRateLimited):
            await service.api.lead(account, next(iter(connected[2].leads)))
    finally:
        fake_kommo.fault_rate = 0.0
        await service.close()
    assert len(fake_kommo.requests) - before == 2


async def test_a_reply_is_withheld_when_a_manager_took_over_before_the_send(shop, fake_llm):
    """The turn was decided, its first send failed for sure (FAILED: retry later); meanwhile a
    manager wrote in the chat. The retry re-reads the conversation and sends nothing."""
    storage = shop.services.storage
    msg = await shop.customer_says("What is the price of the sofa?")
    conv = await shop.conversation()
    key = f"turn_{msg}:reply"
    await _crashed_attempt(storage, shop.org_id, key, "reply.note_draft", minutes_ago=0)  # another worker sends
    with pytest.raises(RetryLater, match="in flight"):
        await shop.engine.run_turn(shop.org_id, conv.id, msg)
    assert await storage.turns.get(shop.org_id, f"turn_{msg}") is not None  # decided and saved
    manager = message_body(shop.fake_acc, "m-manager", "I'll take it from here", chat_id="chat-1",
                           lead_id=shop.lead_id, outgoing=True, author_type="user")
    for event_id in await shop.event(manager):
        await shop.engine.process_event(shop.org_id, event_id)
    assert (await shop.conversation()).state == ConversationState.HANDED_OFF
    await storage.actions.collection.update_one({"idempotency_key": key}, {"$set": {"state": "failed"}})
    notes_before = len(shop.notes())
    assert await shop.engine.run_turn(shop.org_id, conv.id, None) == "withheld"
    assert len(shop.notes()) == notes_before  # no draft reply was written
    record = await storage.actions.by_key(shop.org_id, key)
    assert record.state == ActionState.REFUSED and record.result["withheld"] is True
