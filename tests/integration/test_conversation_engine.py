"""The conversation engine over real Mongo/Redis, the real Kommo client against the fake Kommo,
and the real openai SDK against the fake LLM. The engine is called the way its Celery tasks call
it (a task is a one-line call), so each step's effects can be checked in between."""

from __future__ import annotations

import json
from datetime import timedelta

from core.clock import utcnow
from core.conversations.decide import decide
from core.conversations.sweeper import SWEEP_LOCK
from core.conversations.turns import MAX_TURN_ATTEMPTS
from core.locks import renewable_lock
from core.models.agent import Agent, WorkingHours
from core.models.conversation import ConversationState
from core.models.events import ActionState, EventStatus
from tests.fakes.llm import Fail
from tests.fixtures.engine import message_body


async def _turn(shop, msg_id: str, chat_id: str = "chat-1") -> str:
    conv = await shop.conversation(chat_id)
    return await shop.engine.run_turn(shop.org_id, conv.id, msg_id)


async def test_customer_message_gets_exactly_one_reply(shop, redis_client):
    msg = await shop.customer_says("Hello, do you deliver to Kazan?")
    assert await redis_client.llen("inbound") >= 1  # the turn was scheduled through Celery's broker
    assert await _turn(shop, msg) == "replied"
    notes = shop.notes()
    assert len(notes) == 1 and "Kazan" in notes[0]["params"]["text"]
    conv = await shop.conversation()
    assert conv.replies_count == 1 and conv.pending_turn_id is None
    agent_msgs = await shop.services.storage.messages.list(shop.org_id, {"role": "agent"})
    assert len(agent_msgs) == 1 and agent_msgs[0].text in notes[0]["params"]["text"]
    # A redelivered task: nothing new is sent.
    assert await _turn(shop, msg) == "nothing_to_answer"
    assert len(shop.notes()) == 1


async def test_duplicate_webhook_is_not_answered_twice(shop):
    body = message_body(shop.fake_acc, "dup-1", "Is it in stock?", chat_id="chat-9", lead_id=shop.lead_id)
    first = await shop.event(body)
    again = await shop.event(body)  # Kommo retries the same webhook
    assert len(first) == 1 and again == []
    await shop.engine.process_event(shop.org_id, first[0])
    await shop.engine.process_event(shop.org_id, first[0])  # a redelivered task
    conv = await shop.conversation("chat-9")
    msgs = await shop.services.storage.messages.list(shop.org_id, {"conversation_id": conv.id})
    assert len(msgs) == 1
    await shop.engine.run_turn(shop.org_id, conv.id, msgs[0].id)
    await shop.engine.run_turn(shop.org_id, conv.id, msgs[0].id)
    assert len(shop.notes()) == 1


async def test_burst_within_debounce_gets_one_reply_answering_both(shop, fake_llm):
    first = await shop.customer_says("Hi! I need a sofa")
    second = await shop.customer_says("and a matching armchair")
    assert await _turn(shop, first) == "superseded"
    assert await _turn(shop, second) == "replied"
    notes = shop.notes()
    assert len(notes) == 1
    assert "sofa" in notes[0]["params"]["text"] and "armchair" in notes[0]["params"]["text"]
    assert len(fake_llm.requests) == 1  # one LLM call for the whole burst


async def test_crash_after_plan_resends_the_same_reply_once(shop, fake_llm):
    msg = await shop.customer_says("What are your opening hours?")
    conv = await shop.conversation()
    # A worker decided the turn and died before sending: the plan is saved, nothing was sent.
    turn_id = f"turn_{msg}"
    await shop.services.storage.messages.assign_turn(shop.org_id, [msg], turn_id)
    await shop.services.storage.conversations.update(shop.org_id, conv.id, {"pending_turn_id": turn_id})
    plan = await shop.services.storage.turns.save_plan(shop.org_id, await decide(shop.engine.deps, shop.org_id,
                                                                                 conv, turn_id))
    calls_before = len(fake_llm.requests)
    assert await shop.engine.run_turn(shop.org_id, conv.id, msg) == "replied"
    assert len(fake_llm.requests) == calls_before  # the saved plan was reused, no second LLM call
    notes = shop.notes()
    assert len(notes) == 1 and plan.reply_text in notes[0]["params"]["text"]
    journal = await shop.services.storage.actions.by_key(shop.org_id, f"{turn_id}:reply")
    assert journal.state == ActionState.SENT


async def test_manager_message_hands_off_and_bot_stays_quiet(shop):
    await shop.customer_says("Can I get a discount?")
    body = message_body(shop.fake_acc, "out-1", "Hello, this is Maria, let me check.", chat_id="chat-1",
                        lead_id=shop.lead_id, outgoing=True, author_type="user")
    for event_id in await shop.event(body):
        await shop.engine.process_event(shop.org_id, event_id)
    conv = await shop.conversation()
    assert conv.state == ConversationState.HANDED_OFF and conv.state_reason == "manager_replied"
    msg = await shop.customer_says("Thanks, waiting")
    assert await _turn(shop, msg) == "skipped:handed_off"
    assert shop.notes() == []


async def test_handed_off_conversation_resumes_after_the_quiet_time(shop):
    await shop.services.storage.agents.update(shop.org_id, shop.agent.id, {"handoff_resume_after_hours": 1})
    msg = await shop.customer_says("Hello?")
    conv = await shop.conversation()
    await shop.services.storage.conversations.update(shop.org_id, conv.id, {
        "state": ConversationState.HANDED_OFF, "handed_off_at": utcnow() - timedelta(hours=2)})
    assert await _turn(shop, msg) == "replied"
    assert (await shop.conversation()).state == ConversationState.BOT_ACTIVE


async def test_manager_relaying_the_draft_does_not_hand_off(shop):
    msg = await shop.customer_says("Do you have gift cards?")
    await _turn(shop, msg)
    draft = (await shop.services.storage.messages.list(shop.org_id, {"role": "agent"}))[0].text
    body = message_body(shop.fake_acc, "out-2", draft, chat_id="chat-1", lead_id=shop.lead_id, outgoing=True,
                        author_type="user")
    for event_id in await shop.event(body):
        await shop.engine.process_event(shop.org_id, event_id)
    assert (await shop.conversation()).state == ConversationState.BOT_ACTIVE


async def test_agent_handoff_leaves_task_and_note(shop, fake_llm):
    msg = await shop.customer_says("I want to talk to a human #handoff")
    assert await _turn(shop, msg) == "replied"  # the polite handoff message is still sent
    conv = await shop.conversation()
    assert conv.state == ConversationState.HANDED_OFF
    assert any("handed" in n["params"]["text"] for n in shop.notes())
    assert len([t for t in shop.fake_acc.tasks if t.get("entity_id") == shop.lead_id]) == 1
    # ...and the console's outbox has one handoff for the operators, naming the conversation.
    [handoff] = [n for n in await shop.services.storage.notifications.pending(shop.org_id) if n["kind"] == "handoff"]
    assert handoff["params"]["conversation_id"] == conv.id and handoff["params"]["lead_id"] == shop.lead_id


async def test_llm_failure_ends_in_handoff_not_silence(shop, fake_llm):
    fake_llm.push(Fail(500), Fail(500), Fail(500), Fail(500), Fail(500))
    msg = await shop.customer_says("Where is my order?")
    await _turn(shop, msg)
    conv = await shop.conversation()
    assert conv.state == ConversationState.HANDED_OFF
    assert shop.notes(), "humans were told"


async def test_out_of_hours_reply_once_a_day_then_quiet(shop):
    closed = WorkingHours(timezone="UTC", days={(utcnow().weekday() + 1) % 7: ("09:00", "10:00")},
                          out_of_hours_reply="We are closed now and will answer in the morning.")
    await shop.services.storage.agents.update(shop.org_id, shop.agent.id, {"working_hours": closed.model_dump()})
    first = await shop.customer_says("Hello?")
    assert await _turn(shop, first) == "replied"
    second = await shop.customer_says("Anyone?")
    assert await _turn(shop, second) == "skipped:out_of_hours"
    notes = shop.notes()
    assert len(notes) == 1 and closed.out_of_hours_reply in notes[0]["params"]["text"]


async def test_max_replies_hands_off(shop):
    await shop.services.storage.agents.update(shop.org_id, shop.agent.id, {"max_replies_per_conversation": 1})
    assert await _turn(shop, await shop.customer_says("one")) == "replied"
    assert await _turn(shop, await shop.customer_says("two")) == "replied"  # "a colleague will join"
    assert (await shop.conversation()).state_reason == "max_replies"


async def test_permanent_delivery_failure_keeps_the_draft_and_alerts(shop):
    # salesbot_run towards a reply field Kommo does not have: Kommo cannot take the reply.
    account = await shop.services.storage.kommo_accounts.for_org(shop.org_id)
    await shop.services.storage.kommo_accounts.update(shop.org_id, account.id, {"salesbot_bot_id": 77,
                                                                                "reply_field_id": 999})
    await shop.services.storage.agents.update(shop.org_id, shop.agent.id, {"delivery_mode": "salesbot_run"})
    msg = await shop.customer_says("Price of the blue chair?")
    await _turn(shop, msg)
    conv = await shop.conversation()
    assert conv.state == ConversationState.HANDED_OFF and conv.state_reason == "delivery_failed"
    draft_note = [n for n in shop.notes() if "chair" in n["params"]["text"]]
    assert draft_note, "the reply text is kept for a human"
    alerts = await shop.services.storage.notifications.pending(shop.org_id)
    assert any(a["kind"] == "reply_failed" for a in alerts)


async def test_two_unscoped_agents_tie_is_reported(shop):
    await shop.services.storage.agents.insert(shop.org_id, Agent(_id="agt_two", org_id=shop.org_id, name="Second"))
    msg = await shop.customer_says("hello")
    assert await _turn(shop, msg) == "skipped:agent_tie"
    alerts = await shop.services.storage.notifications.pending(shop.org_id)
    assert [a["kind"] for a in alerts] == ["agent_tie"]
    assert shop.notes() == []


async def test_voice_message_without_text_hands_off(shop):
    msg = await shop.customer_says("")
    assert await _turn(shop, msg) == "replied"
    texts = [n["params"]["text"] for n in shop.notes()]
    assert any("colleague" in t for t in texts)  # the customer is told (agent language: en)
    assert any("non-text" in t for t in texts)  # the humans are told why
    assert (await shop.conversation()).state_reason == "non_text"


async def _unanswered_and_lost(shop, redis_client, text: str):
    """A customer message five minutes old whose task the broker lost (Redis restarted)."""
    await shop.customer_says(text)
    conv = await shop.conversation()
    old = utcnow() - timedelta(minutes=5)
    await shop.services.storage.messages.collection.update_many({"conversation_id": conv.id},
                                                                {"$set": {"created_at": old}})
    await redis_client.delete("inbound")
    return conv


async def test_sweeper_requeues_lost_work(shop, redis_client):
    await _unanswered_and_lost(shop, redis_client, "Are you there?")
    report = await shop.engine.sweep(stale_after_s=60)
    assert report.turns_requeued == 1
    assert await redis_client.llen("inbound") == 1


async def test_sweeper_fails_a_poison_event_with_an_alert_but_leaves_one_being_worked_on(shop, redis_client):
    """An event whose task keeps dying is failed and the admins told; one a worker claimed a
    moment ago (its task retrying while an uncertain reply becomes safe to check) is alive."""
    storage = shop.services.storage
    [event_id] = await shop.event(message_body(shop.fake_acc, "m-poison", "Hello?", chat_id="c-p",
                                               lead_id=shop.lead_id))
    await redis_client.delete("inbound")
    old = utcnow() - timedelta(minutes=10)
    await storage.events.collection.update_one({"_id": event_id}, {"$set": {
        "status": "processing", "attempts": 12, "received_at": old, "claimed_at": utcnow()}})
    report = await shop.engine.sweep(stale_after_s=60)
    assert report.events_failed == 0 and report.events_requeued == 0
    assert (await storage.events.get(shop.org_id, event_id)).status == EventStatus.PROCESSING
    await storage.events.collection.update_one({"_id": event_id}, {"$set": {"claimed_at": old}})
    report = await shop.engine.sweep(stale_after_s=60)  # it used to crash here (a `kind` clash)
    assert report.events_failed == 1
    assert (await storage.events.get(shop.org_id, event_id)).status == EventStatus.PARKED
    alerts = [a for a in await storage.notifications.pending(shop.org_id) if a["kind"] == "event_failed"]
    assert [(a["params"]["event_id"], a["params"]["event_kind"]) for a in alerts] == [(event_id, "message.add")]


async def test_follow_up_after_silence_respects_whatsapp_window(shop):
    policy = {"enabled": True, "after_hours": 2, "max_times": 1, "text": "Still interested?"}
    await shop.services.storage.agents.update(shop.org_id, shop.agent.id, {"follow_up": policy})
    await _turn(shop, await shop.customer_says("How much?", chat_id="tg"), chat_id="tg")
    await _turn(shop, await shop.customer_says("Сколько?", chat_id="wa", origin="whatsapp"), chat_id="wa")
    storage = shop.services.storage
    tg, wa = await shop.conversation("tg"), await shop.conversation("wa")
    await storage.conversations.update(shop.org_id, tg.id, {"last_customer_at": utcnow() - timedelta(hours=3),
                                                             "last_reply_at": utcnow() - timedelta(hours=3)})
    await storage.conversations.update(shop.org_id, wa.id, {"last_customer_at": utcnow() - timedelta(hours=30),
                                                             "last_reply_at": utcnow() - timedelta(hours=30)})
    before = len(shop.notes())
    assert await shop.engine.follow_ups() == 1
    assert await shop.engine.follow_ups() == 0  # at most max_times
    texts = [n["params"]["text"] for n in shop.notes()[before:]]
    assert len(texts) == 1 and "Still interested?" in texts[0]


async def test_a_turn_that_keeps_failing_is_handed_off_not_looped(shop):
    msg = await shop.customer_says("hello")
    conv = await shop.conversation()
    # A turn claimed by runs that all crashed (the attempts counter is what they leave behind).
    await shop.services.storage.messages.assign_turn(shop.org_id, [msg], f"turn_{msg}")
    await shop.services.storage.conversations.update(shop.org_id, conv.id, {
        "pending_turn_id": f"turn_{msg}", "turn_attempts": MAX_TURN_ATTEMPTS})
    assert await shop.engine.run_turn(shop.org_id, conv.id, None) == "failed"
    conv = await shop.conversation()
    assert conv.state == ConversationState.HANDED_OFF and conv.pending_turn_id is None
    alerts = await shop.services.storage.notifications.pending(shop.org_id)
    assert any(a["kind"] == "turn_failed" for a in alerts)


async def test_without_debounce_the_event_task_answers_inline(shop, redis_client):
    shop.engine.deps.debounce_s = 0
    await redis_client.delete("inbound")
    await shop.customer_says("Quick question: do you ship abroad?")
    assert len(shop.notes()) == 1  # answered by the event's own task
    queued = [json.loads(m)["headers"]["task"] for m in await redis_client.lrange("inbound", 0, -1)]
    assert queued == ["inbound.process_event"]  # no second trip through the broker for a turn


async def test_crash_between_claiming_and_stamping_a_turn_loses_nothing(shop):
    msg = await shop.customer_says("Do you have this in blue?")
    conv = await shop.conversation()
    # The database went away right after the conversation remembered the turn.
    await shop.services.storage.conversations.update(shop.org_id, conv.id, {"pending_turn_id": f"turn_{msg}",
                                                                            "turn_attempts": 1})
    assert await shop.engine.run_turn(shop.org_id, conv.id, None) == "replied"
    notes = shop.notes()
    assert len(notes) == 1 and "blue" in notes[0]["params"]["text"]


async def test_sweeper_requeues_once_per_window_while_the_broker_has_a_backlog(shop, redis_client):
    """Workers are behind: the lost turn is re-enqueued once, the next sweeps add no duplicates
    (it may just be queued), and once its window is over it is re-enqueued again."""
    conv = await _unanswered_and_lost(shop, redis_client, "Are you open on Sunday?")
    await redis_client.rpush("inbound", *[b"{}"] * 50)
    assert (await shop.engine.sweep(stale_after_s=60)).turns_requeued == 1
    again = await shop.engine.sweep(stale_after_s=60)
    assert again.turns_requeued == 0 and again.recently_requeued == 1
    await redis_client.delete(f"sweep:turn:{shop.org_id}:{conv.id}")  # its window is over
    assert (await shop.engine.sweep(stale_after_s=60)).turns_requeued == 1


async def test_only_one_sweep_runs_at_a_time(shop, redis_client):
    await _unanswered_and_lost(shop, redis_client, "Anyone?")
    async with renewable_lock(shop.services.redis, SWEEP_LOCK, hold_s=30, wait_s=None) as held:
        assert held  # a slow sweep (another worker) is still running
        report = await shop.engine.sweep(stale_after_s=60)
        assert report.skipped_busy and report.turns_requeued == 0
        assert await redis_client.llen("inbound") == 0
    report = await shop.engine.sweep(stale_after_s=60)
    assert not report.skipped_busy and report.turns_requeued == 1


async def test_second_turn_remembers_the_first_and_sends_the_new_messages_once(shop, fake_llm):
    await _turn(shop, await shop.customer_says("Do you sell red bicycles?"))
    fake_llm.requests.clear()
    await shop.customer_says("And what about blue ones?")
    await _turn(shop, await shop.customer_says("Or green?"))  # a burst of two: one turn
    prompt = json.dumps(fake_llm.requests[-1]["messages"], ensure_ascii=False)
    assert "red bicycles" in prompt  # the earlier turn is in the conversation memory
    assert prompt.count("blue ones") == 1 and prompt.count("Or green") == 1  # the burst once, not also as history
    assert len(shop.notes()) == 2


async def test_sweeper_requeues_a_turn_left_unfinished(shop, redis_client):
    msg = await shop.customer_says("Still there?")
    conv = await shop.conversation()
    old = utcnow() - timedelta(minutes=5)
    # A worker died mid-turn: its messages are stamped, the conversation still names the turn.
    await shop.services.storage.messages.assign_turn(shop.org_id, [msg], f"turn_{msg}")
    await shop.services.storage.conversations.update(shop.org_id, conv.id, {
        "pending_turn_id": f"turn_{msg}", "turn_attempts": 1, "last_customer_at": old})
    await redis_client.delete("inbound")
    report = await shop.engine.sweep(stale_after_s=60)
    assert report.turns_requeued == 1
    assert await shop.engine.run_turn(shop.org_id, conv.id, None) == "replied"
    assert (await shop.engine.sweep(stale_after_s=60)).turns_requeued == 0  # finished: nothing left


async def test_webhook_from_a_renamed_account_moves_the_connection(shop):
    """The account was renamed in Kommo: its webhooks name the new subdomain, and the worker
    follows it before acting (the shop is on a long-lived token, so no refresh could)."""
    storage = shop.services.storage
    before = await storage.kommo_accounts.for_org(shop.org_id)
    shop.fake_acc.rename(f"{shop.fake_acc.subdomain}-new")
    await shop.customer_says("Hello, is the sofa in stock?")
    after = await storage.kommo_accounts.for_org(shop.org_id)
    assert after.host == f"{shop.fake_acc.subdomain}.kommo.com" != before.host
    alerts = await storage.notifications.pending(shop.org_id)
    assert [a["params"]["new_host"] for a in alerts if a["kind"] == "kommo_subdomain_changed"] == [after.host]
    conversation = await shop.conversation()
    assert conversation is not None and conversation.lead_id == shop.lead_id
