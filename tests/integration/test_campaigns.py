"""Campaigns over real Mongo/Redis, the real Kommo client against the fake Kommo and the real
openai SDK against the fake LLM; batches are run the way the Celery task runs them."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from core.campaigns.personalise import Personaliser
from core.campaigns.runner import idempotency_key
from core.campaigns.service import CampaignService
from core.clock import utcnow
from core.errors import InvalidInput, NotFound
from core.kommo.delivery.replies import DRAFT_PREFIX
from core.models.agent import DeliveryMode
from core.models.campaign import CampaignStatus, TargetState
from core.models.events import ActionState
from tests.fakes.llm import Fail, Reply, last_user_text
from tests.fixtures.campaigns import PROPOSAL, add_conversation, add_lead, campaign_service, drafts

TEXT = "Hello, {first_name|friend}! Our spring prices are live until Friday."


@pytest.fixture
async def campaigns(shop):
    return await campaign_service(shop)


async def _start(campaigns, shop, **kw):
    args = dict(agent="Sales", pipeline="Sales", stage="Qualified", template=TEXT)
    return await campaigns.start(shop.org_id, **{**args, **kw})


def _assert_paced(shop):
    assert shop.fake.rate_limited == 0
    assert shop.fake.max_in_window(shop.fake_acc.id) <= 7


async def test_one_message_per_eligible_lead_filled_per_lead(shop, campaigns):
    ivan = add_lead(shop.fake_acc, "Ivan Petrov")
    anna = add_lead(shop.fake_acc, "Anna Smirnova")
    nobody = add_lead(shop.fake_acc, None)
    other_stage = add_lead(shop.fake_acc, "Oleg", stage=PROPOSAL)
    campaign = await _start(campaigns, shop)
    assert campaign.status == CampaignStatus.DRAFT
    done = await campaigns.run_to_end(shop.org_id, campaign.id)
    assert done.status == CampaignStatus.DONE and (done.total, done.sent, done.skipped, done.failed) == (3, 3, 0, 0)
    assert drafts(shop.fake_acc, ivan) == [DRAFT_PREFIX + "Hello, Ivan! Our spring prices are live until Friday."]
    assert drafts(shop.fake_acc, anna) == [DRAFT_PREFIX + "Hello, Anna! Our spring prices are live until Friday."]
    assert drafts(shop.fake_acc, nobody) == [DRAFT_PREFIX + "Hello, friend! Our spring prices are live until Friday."]
    assert drafts(shop.fake_acc, other_stage) == []
    # Running it again (a redelivered task) sends nothing more.
    again = await campaigns.run_batch(shop.org_id, campaign.id)
    assert not again.more and sum(len(drafts(shop.fake_acc, x)) for x in (ivan, anna, nobody)) == 3
    pending = await shop.services.storage.notifications.pending(shop.org_id)
    finished = [n for n in pending if n["kind"] == "campaign_finished"]
    assert len(finished) == 1 and finished[0]["params"]["sent"] == 3 and finished[0]["params"]["campaign_id"] == campaign.id
    _assert_paced(shop)


async def test_tag_filter(shop, campaigns):
    vip = add_lead(shop.fake_acc, "Vera", tags=("VIP", "spring"))
    plain = add_lead(shop.fake_acc, "Petr", tags=("spring",))
    done = await campaigns.run_to_end(shop.org_id, (await _start(campaigns, shop, tag="vip")).id)
    assert (done.total, done.sent) == (1, 1)
    assert len(drafts(shop.fake_acc, vip)) == 1 and drafts(shop.fake_acc, plain) == []


async def test_whatsapp_window_leads_are_skipped_with_the_reason(shop, campaigns):
    storage, now = shop.services.storage, utcnow()
    stale = add_lead(shop.fake_acc, "Stale WhatsApp")
    fresh = add_lead(shop.fake_acc, "Fresh WhatsApp")
    never = add_lead(shop.fake_acc, "Silent WhatsApp")
    telegram = add_lead(shop.fake_acc, "Old Telegram")
    no_chat = add_lead(shop.fake_acc, "No chat")
    await add_conversation(storage, shop.org_id, stale, origin="whatsapp", last_customer_at=now - timedelta(hours=30))
    fresh_conv = await add_conversation(storage, shop.org_id, fresh, origin="waba",
                                        last_customer_at=now - timedelta(hours=2))
    await add_conversation(storage, shop.org_id, never, origin="whatsapp", last_customer_at=None)
    await add_conversation(storage, shop.org_id, telegram, origin="telegram", last_customer_at=now - timedelta(days=5))
    campaign = await _start(campaigns, shop)
    done = await campaigns.run_to_end(shop.org_id, campaign.id)
    assert (done.sent, done.skipped, done.failed) == (3, 2, 0)
    assert drafts(shop.fake_acc, stale) == [] and drafts(shop.fake_acc, never) == []
    assert all(len(drafts(shop.fake_acc, x)) == 1 for x in (fresh, telegram, no_chat))
    _, report = await campaigns.status(shop.org_id, campaign.id)
    reasons = {s["lead_id"]: s["reason"] for s in report["skipped_leads"]}
    assert reasons[stale].startswith("WhatsApp 24-hour window closed: the customer last wrote 30 h ago")
    assert "never written" in reasons[never]
    # The message joined the conversation: the agent knows what the customer answers, and a
    # manager relaying the draft is recognised as such.
    conv = await storage.conversations.get(shop.org_id, fresh_conv.id)
    assert conv.last_reply_text.startswith("Hello, Fresh!")
    msgs = await storage.messages.list(shop.org_id, {"conversation_id": fresh_conv.id, "role": "agent"})
    assert [m.text for m in msgs] == [conv.last_reply_text]


async def test_chats_api_needs_an_open_chat(shop, campaigns):
    storage = shop.services.storage
    await storage.agents.update(shop.org_id, shop.agent.id, {"delivery_mode": DeliveryMode.CHATS_API})
    lead = add_lead(shop.fake_acc, "No chat")
    done = await campaigns.run_to_end(shop.org_id, (await _start(campaigns, shop)).id)
    assert (done.sent, done.skipped) == (0, 1)
    _, report = await campaigns.status(shop.org_id, done.id)
    assert report["skipped_leads"] == [{"lead_id": lead, "lead_name": "Lead", "reason": "no open chat to write into"}]


async def test_crash_mid_way_resumes_without_sending_twice(shop, campaigns):
    leads = [add_lead(shop.fake_acc, f"Client{i} X") for i in range(6)]
    campaign = await _start(campaigns, shop)
    first = await campaigns.run_batch(shop.org_id, campaign.id, max_leads=2)
    assert first.more and first.campaign.sent == 2
    # A worker prepared the third lead and sent it, then died before recording the outcome.
    storage = shop.services.storage
    target = (await storage.campaign_targets.open(shop.org_id, campaign.id, 1))[0]
    target = await storage.campaign_targets.prepare(shop.org_id, target.id, "Hello, Client2! crash-time text", False)
    kommo = await shop.services.kommo()
    await kommo.actions.send_reply(shop.org_id, lead_id=target.lead_id, text=target.text, mode=DeliveryMode.NOTE_DRAFT,
                                   idempotency_key=idempotency_key(campaign.id, target.lead_id))
    # The redelivered task (a fresh service, as in a new worker process) picks up from Mongo.
    fresh = await campaign_service(shop)
    done = await fresh.run_to_end(shop.org_id, campaign.id)
    assert (done.status, done.sent) == (CampaignStatus.DONE, 6)
    assert [len(drafts(shop.fake_acc, x)) for x in leads] == [1] * 6
    assert drafts(shop.fake_acc, target.lead_id) == [DRAFT_PREFIX + "Hello, Client2! crash-time text"]
    record = await storage.actions.by_key(shop.org_id, idempotency_key(campaign.id, target.lead_id))
    assert record.state == ActionState.SENT
    _assert_paced(shop)


async def test_cancel_stops_at_the_next_lead(shop, campaigns):
    leads = [add_lead(shop.fake_acc, f"C{i}") for i in range(5)]
    campaign = await _start(campaigns, shop)
    seen = []

    async def cancel_after_first(c, tally):
        seen.append(dict(tally))
        if len(seen) == 1:
            await campaigns.cancel(shop.org_id, campaign.id)

    result = await campaigns.run_batch(shop.org_id, campaign.id, progress=cancel_after_first)
    assert not result.more and result.campaign.status == CampaignStatus.CANCELLED
    assert sum(len(drafts(shop.fake_acc, x)) for x in leads) == 1
    assert (await campaigns.run_batch(shop.org_id, campaign.id)).processed == 0  # a later task does nothing
    assert sum(len(drafts(shop.fake_acc, x)) for x in leads) == 1
    with pytest.raises(InvalidInput, match="already cancelled"):
        await campaigns.cancel(shop.org_id, campaign.id)
    notes = [n for n in await shop.services.storage.notifications.pending(shop.org_id)
             if n["kind"] == "campaign_finished"]
    assert notes[0]["params"]["status"] == "cancelled" and notes[0]["params"]["sent"] == 1


async def test_rate_limit_is_never_exceeded_with_two_requests_per_lead(shop, campaigns):
    storage = shop.services.storage
    account = await storage.kommo_accounts.for_org(shop.org_id)
    await storage.kommo_accounts.update(shop.org_id, account.id, {"reply_field_id": 501, "salesbot_bot_id": 77})
    await storage.agents.update(shop.org_id, shop.agent.id, {"delivery_mode": DeliveryMode.SALESBOT_RUN})
    leads = [add_lead(shop.fake_acc, f"R{i}") for i in range(14)]
    done = await campaigns.run_to_end(shop.org_id, (await _start(campaigns, shop)).id, max_leads=5)
    assert done.sent == 14
    assert sorted(r["entity_id"] for r in shop.fake_acc.bot_runs) == sorted(leads)
    _assert_paced(shop)


async def test_a_salesbot_run_campaign_pauses_once_when_the_bot_is_gone(shop, campaigns):
    """A deleted Salesbot refuses every lead alike: the campaign pauses (one notice) instead of
    failing lead after lead, and resumes once a working bot is set."""
    storage = shop.services.storage
    account = await storage.kommo_accounts.for_org(shop.org_id)
    await storage.kommo_accounts.update(shop.org_id, account.id, {"reply_field_id": 501, "salesbot_bot_id": 77})
    await storage.agents.update(shop.org_id, shop.agent.id, {"delivery_mode": DeliveryMode.SALESBOT_RUN})
    leads = [add_lead(shop.fake_acc, f"G{i}") for i in range(3)]
    del shop.fake_acc.bots[77]
    campaign = await _start(campaigns, shop)
    result = await campaigns.run_batch(shop.org_id, campaign.id)
    while result.more:
        result = await campaigns.run_batch(shop.org_id, campaign.id)
    assert result.campaign.status == CampaignStatus.PAUSED and "Salesbot 77" in result.campaign.status_reason
    paused = [n for n in await storage.notifications.pending(shop.org_id) if n["kind"] == "campaign_paused"]
    assert len(paused) == 1 and not shop.fake_acc.bot_runs
    shop.fake_acc.bots[77] = {"id": 77, "name": "AI reply sender", "is_active": True}
    await campaigns.resume(shop.org_id, campaign.id)
    done = await campaigns.run_to_end(shop.org_id, campaign.id)
    assert done.status == CampaignStatus.DONE and done.sent == 3
    assert sorted(r["entity_id"] for r in shop.fake_acc.bot_runs) == sorted(leads)


async def test_personalised_per_lead_and_metered(shop, campaigns, fake_llm):
    def rewrite(body):
        user = last_user_text(body)
        facts = json.loads(user.split("CUSTOMER FACTS (JSON):", 1)[1])
        return Reply(content=f"Dear {facts['name']}, spring prices are live until Friday - just for you.")

    fake_llm.handler = rewrite
    ivan = add_lead(shop.fake_acc, "Ivan Petrov")
    anna = add_lead(shop.fake_acc, "Anna Smirnova")
    campaign = await _start(campaigns, shop, personalise=True)
    done = await campaigns.run_to_end(shop.org_id, campaign.id)
    assert done.sent == 2
    assert drafts(shop.fake_acc, ivan) == [DRAFT_PREFIX + "Dear Ivan Petrov, spring prices are live until Friday - just for you."]
    assert drafts(shop.fake_acc, anna)[0].endswith("Dear Anna Smirnova, spring prices are live until Friday - just for you.")
    assert "Hello, Ivan!" in json.dumps(fake_llm.requests[0]["messages"], ensure_ascii=False)  # filled first
    usage = await shop.services.usage.list(shop.org_id, {"purpose": "campaign"})
    assert len(usage) == 2
    _, report = await campaigns.status(shop.org_id, campaign.id)
    assert report["personalised"] == 2


async def test_llm_failure_falls_back_to_the_filled_template(shop, campaigns, fake_llm):
    fake_llm.handler = lambda body: Fail(400, "bad request")
    lead = add_lead(shop.fake_acc, "Ivan Petrov")
    done = await campaigns.run_to_end(shop.org_id, (await _start(campaigns, shop, personalise=True)).id)
    assert done.sent == 1
    assert drafts(shop.fake_acc, lead) == [DRAFT_PREFIX + "Hello, Ivan! Our spring prices are live until Friday."]


async def test_bad_input_is_refused_with_a_clear_reason(shop, campaigns):
    with pytest.raises(InvalidInput, match="unknown stage 'Nope' in pipeline 'Sales'; stages: Incoming"):
        await _start(campaigns, shop, stage="Nope")
    with pytest.raises(InvalidInput, match="unknown pipeline"):
        await _start(campaigns, shop, pipeline="Marketing")
    with pytest.raises(InvalidInput, match="message is empty"):
        await _start(campaigns, shop, template="   ")
    with pytest.raises(NotFound, match="unknown agent 'Ghost'"):
        await _start(campaigns, shop, agent="Ghost")
    with pytest.raises(InvalidInput, match=r"unknown placeholder\(s\): \{nmae\}"):
        await _start(campaigns, shop, template="Hi {nmae}")
    with pytest.raises(InvalidInput, match="unbalanced"):
        await _start(campaigns, shop, template="Hi {name")
    no_llm = CampaignService(campaigns.deps.__class__(**{**campaigns.deps.__dict__, "personaliser": Personaliser(None)}))
    with pytest.raises(InvalidInput, match="needs an LLM"):
        await _start(no_llm, shop, personalise=True)
    await shop.services.storage.agents.update(shop.org_id, shop.agent.id, {"delivery_mode": DeliveryMode.SALESBOT})
    with pytest.raises(InvalidInput, match="waiting Salesbot"):
        await _start(campaigns, shop)
    assert await shop.services.storage.campaigns.count(shop.org_id) == 0


async def test_lost_connection_pauses_and_resume_continues(shop, campaigns):
    leads = [add_lead(shop.fake_acc, f"P{i}") for i in range(3)]
    campaign = await _start(campaigns, shop)
    await campaigns.run_batch(shop.org_id, campaign.id, max_leads=1)
    shop.fake_acc.blocked = True  # Kommo answers 403: the account is marked blocked
    paused = (await campaigns.run_batch(shop.org_id, campaign.id)).campaign
    assert paused.status == CampaignStatus.PAUSED and "403" in paused.status_reason
    kinds = [n["kind"] for n in await shop.services.storage.notifications.pending(shop.org_id)]
    assert "campaign_paused" in kinds
    # The operator fixes the connection, then resumes.
    shop.fake_acc.blocked = False
    storage = shop.services.storage
    account = await storage.kommo_accounts.for_org(shop.org_id)
    await storage.kommo_accounts.update(shop.org_id, account.id, {"status": "active", "status_reason": None})
    (await shop.services.kommo()).client.unblock(account.id)
    await campaigns.resume(shop.org_id, campaign.id)
    done = await campaigns.run_to_end(shop.org_id, campaign.id)
    assert (done.status, done.sent) == (CampaignStatus.DONE, 3)
    assert [len(drafts(shop.fake_acc, x)) for x in leads] == [1, 1, 1]
    targets = await storage.campaign_targets.in_state(shop.org_id, campaign.id, TargetState.SENT)
    assert len(targets) == 3
