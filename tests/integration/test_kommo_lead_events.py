"""Kommo events beyond messages, through the real intake and engine (issue 15, section 4): a
lead's stage changed (stored for outcome reports; won/lost closes the conversation and its
follow-ups; leaving the agent's stages stops the agent), a lead deleted, a talk closed, an
incoming lead accepted, and our own writes echoed back recognised from the action journal."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from core.clock import day_key, utcnow
from core.models.conversation import ConversationState
from core.models.events import EventStatus
from tests.fixtures.engine import message_body


def status_body(fake_acc, lead_id: int, status_id: int, old_status_id: int, *, pipeline_id: int = 3001,
                stamp: int | None = None, user_id: int = 9) -> bytes:
    return urlencode([
        ("leads[status][0][id]", str(lead_id)), ("leads[status][0][status_id]", str(status_id)),
        ("leads[status][0][old_status_id]", str(old_status_id)), ("leads[status][0][pipeline_id]", str(pipeline_id)),
        ("leads[status][0][old_pipeline_id]", str(pipeline_id)), ("leads[status][0][modified_user_id]", str(user_id)),
        ("leads[status][0][updated_at]", str(stamp or int(utcnow().timestamp()))),
        ("account[subdomain]", fake_acc.subdomain), ("account[id]", str(fake_acc.id))]).encode()


async def feed(shop, body: bytes) -> list[str]:
    outcomes = []
    for event_id in await shop.event(body):
        outcomes.append(await shop.engine.process_event(shop.org_id, event_id))
    return outcomes


async def _turn(shop, msg_id: str, chat_id: str = "chat-1") -> str:
    conv = await shop.conversation(chat_id)
    return await shop.engine.run_turn(shop.org_id, conv.id, msg_id)


async def test_won_lead_closes_the_conversation_cancels_follow_ups_and_is_recorded(shop):
    storage = shop.services.storage
    policy = {"enabled": True, "after_hours": 1, "max_times": 2, "text": "Still interested?"}
    await storage.agents.update(shop.org_id, shop.agent.id, {"follow_up": policy})
    assert await _turn(shop, await shop.customer_says("Do you have the Oslo sofa?")) == "replied"
    conv = await shop.conversation()
    await storage.conversations.update(shop.org_id, conv.id, {"last_customer_at": utcnow() - timedelta(hours=3),
                                                              "last_reply_at": utcnow() - timedelta(hours=3)})
    pending = await shop.customer_says("I'll take it")  # a turn is scheduled when the lead is won
    stamp = int(utcnow().timestamp())
    body = status_body(shop.fake_acc, shop.lead_id, 142, 4001, stamp=stamp)
    assert await feed(shop, body) == ["closed:lead_won"]
    conv = await shop.conversation()
    assert conv.state == ConversationState.CLOSED and conv.state_reason == "lead_won"
    notes = len(shop.notes())
    assert await shop.engine.follow_ups() == 0  # no nudge to a customer who has bought
    assert await _turn(shop, pending) == "skipped:closed"
    assert len(shop.notes()) == notes
    (change,) = await storage.lead_status_events.of_lead(shop.org_id, shop.lead_id)
    assert (change.won, change.lost, change.new_status_id, change.old_status_id, change.pipeline_id) == (
        True, False, 142, 4001, 3001)
    assert change.agent_id == shop.agent.id and change.conversation_id == conv.id and not change.by_agent
    assert change.day == day_key(change.at) and int(change.at.timestamp()) == stamp
    # Kommo re-sends the hook (dedupe at intake), a task is redelivered (one document per event).
    assert await feed(shop, body) == []
    await shop.engine.process_event(shop.org_id, change.event_id)
    await shop.engine.deps.storage.events.set_status(shop.org_id, change.event_id, EventStatus.RECEIVED)
    await shop.engine.process_event(shop.org_id, change.event_id)
    assert len(await storage.lead_status_events.of_days(shop.org_id, change.day, change.day)) == 1


async def test_lost_lead_closes_and_a_message_on_a_new_lead_opens_it_again(shop):
    storage = shop.services.storage
    await _turn(shop, await shop.customer_says("Too expensive, thanks"))
    assert await feed(shop, status_body(shop.fake_acc, shop.lead_id, 143, 4002)) == ["closed:lead_lost"]
    (change,) = await storage.lead_status_events.of_lead(shop.org_id, shop.lead_id)
    assert change.lost and not change.won
    # Months later the customer writes in the same chat; Kommo opens a new lead for it.
    new_lead = max(shop.fake_acc.leads) + 1
    shop.fake_acc.leads[new_lead] = {**shop.fake_acc.leads[shop.lead_id], "id": new_lead, "status_id": 4001}
    msg = await shop.customer_says("Hello again, any discounts now?", lead_id=new_lead)
    conv = await shop.conversation()
    assert conv.state == ConversationState.BOT_ACTIVE and conv.lead_id == new_lead
    assert await _turn(shop, msg) == "replied"


async def test_the_agent_stops_when_the_lead_leaves_its_stages_and_returns_with_it(shop):
    storage = shop.services.storage
    await storage.agents.update(shop.org_id, shop.agent.id, {"pipeline_id": 3001, "stage_ids": [4001, 4002]})
    assert await _turn(shop, await shop.customer_says("Hi, a question about delivery")) == "replied"
    shop.fake_acc.leads[shop.lead_id]["status_id"] = 4003  # a manager moved it to "Proposal"
    assert await feed(shop, status_body(shop.fake_acc, shop.lead_id, 4003, 4001)) == ["closed:left_agent_stages"]
    conv = await shop.conversation()
    assert conv.state == ConversationState.CLOSED and conv.state_reason == "left_agent_stages"
    msg = await shop.customer_says("And the price?")
    assert await _turn(shop, msg) == "skipped:out_of_scope"
    shop.fake_acc.leads[shop.lead_id]["status_id"] = 4002
    assert await feed(shop, status_body(shop.fake_acc, shop.lead_id, 4002, 4003)) == ["reopened"]
    assert (await shop.conversation()).state == ConversationState.BOT_ACTIVE
    changes = await storage.lead_status_events.of_lead(shop.org_id, shop.lead_id)
    assert [(c.old_status_id, c.new_status_id) for c in changes] == [(4001, 4003), (4003, 4002)]


async def test_lead_deleted_and_talk_closed_close_the_conversation(shop):
    await _turn(shop, await shop.customer_says("Hi", chat_id="c-del"), chat_id="c-del")
    body = urlencode([("leads[delete][0][id]", str(shop.lead_id)), ("leads[delete][0][status_id]", "4001"),
                      ("leads[delete][0][pipeline_id]", "3001"), ("account[subdomain]", shop.fake_acc.subdomain),
                      ("account[id]", str(shop.fake_acc.id))]).encode()
    assert await feed(shop, body) == ["closed:lead_deleted"]
    assert (await shop.conversation("c-del")).state_reason == "lead_deleted"

    other = max(shop.fake_acc.leads) + 1
    shop.fake_acc.leads[other] = {**shop.fake_acc.leads[shop.lead_id], "id": other}
    await _turn(shop, await shop.customer_says("Hello", chat_id="c-talk", lead_id=other), chat_id="c-talk")

    def talk(talk_id: str, in_work: str, stamp: str) -> bytes:
        return urlencode([("talk[update][0][talk_id]", talk_id), ("talk[update][0][chat_id]", "c-talk"),
                          ("talk[update][0][entity_id]", str(other)), ("talk[update][0][entity_type]", "lead"),
                          ("talk[update][0][is_in_work]", in_work), ("talk[update][0][updated_at]", stamp),
                          ("account[subdomain]", shop.fake_acc.subdomain)]).encode()
    still_open = await shop.event(talk("11", "1", "100"))  # a read mark: stored, not worth a task
    assert (await shop.services.storage.events.get(shop.org_id, still_open[0])).status == EventStatus.IGNORED
    assert await feed(shop, talk("10", "0", "101")) == ["no_change"]  # an older talk of the chat
    assert await feed(shop, talk("11", "0", "102")) == ["closed:talk_closed"]
    assert (await shop.conversation("c-talk")).state == ConversationState.CLOSED
    # The customer writes again: Kommo opens a new talk, and the agent answers it.
    body = message_body(shop.fake_acc, "m-new-talk", "One more question", chat_id="c-talk", lead_id=other)
    body = body.replace(b"message%5Badd%5D%5B0%5D%5Btalk_id%5D=11", b"message%5Badd%5D%5B0%5D%5Btalk_id%5D=12")
    await feed(shop, body)
    conv = await shop.conversation("c-talk")
    assert conv.state == ConversationState.BOT_ACTIVE and conv.talk_id == 12


async def test_an_accepted_incoming_lead_is_checked_against_the_agents_stages(shop):
    storage = shop.services.storage
    await storage.agents.update(shop.org_id, shop.agent.id, {"pipeline_id": 3001, "stage_ids": [4001]})
    await _turn(shop, await shop.customer_says("Hi from the unsorted chat"))
    shop.fake_acc.leads[shop.lead_id]["status_id"] = 4002  # accepted into the first working stage
    body = urlencode([("unsorted[delete][0][uid]", "u-1"), ("unsorted[delete][0][action]", "accept"),
                      ("unsorted[delete][0][category]", "chats"),
                      ("unsorted[delete][0][accept_result][leads][0]", str(shop.lead_id)),
                      ("account[subdomain]", shop.fake_acc.subdomain)]).encode()
    assert await feed(shop, body) == ["closed:left_agent_stages"]
    declined = urlencode([("unsorted[delete][0][uid]", "u-2"), ("unsorted[delete][0][action]", "decline"),
                          ("unsorted[delete][0][decline_result][leads][0]", str(shop.lead_id)),
                          ("account[subdomain]", shop.fake_acc.subdomain)]).encode()
    assert await feed(shop, declined) == ["closed:unsorted_declined"]


async def test_our_own_writes_echoed_back_are_recognised_by_the_journal(shop, fake_llm):
    storage = shop.services.storage
    msg = await shop.customer_says("Is the Oslo sofa in stock?")
    assert await _turn(shop, msg) == "replied"
    reply = (await storage.messages.list(shop.org_id, {"role": "agent"}))[0].text
    # Kommo echoes the reply as an outgoing message; its author says "user" (the token's
    # admin), which is not what decides: the journal holds this text for this lead.
    echo = message_body(shop.fake_acc, "echo-1", reply, chat_id="chat-1", lead_id=shop.lead_id, outgoing=True,
                        author_type="user")
    event_ids = await shop.event(echo)
    assert [await shop.engine.process_event(shop.org_id, e) for e in event_ids] == ["own_write"]
    assert (await storage.events.get(shop.org_id, event_ids[0])).status == EventStatus.IGNORED
    assert (await shop.conversation()).state == ConversationState.BOT_ACTIVE
    # The same text on another lead is not ours: a human wrote it there.
    other = max(shop.fake_acc.leads) + 1
    shop.fake_acc.leads[other] = {**shop.fake_acc.leads[shop.lead_id], "id": other}
    await shop.customer_says("Hi", chat_id="chat-2", lead_id=other)
    human = message_body(shop.fake_acc, "echo-2", reply, chat_id="chat-2", lead_id=other, outgoing=True,
                         author_type="user")
    assert await feed(shop, human) == ["handed_off"]
    # A stage move the agent made is marked as the agent's in the outcome record.
    kommo = await shop.services.kommo()
    await kommo.actions.move_lead(shop.org_id, shop.lead_id, 3001, 4002, "turn_x:a0")
    assert await feed(shop, status_body(shop.fake_acc, shop.lead_id, 4002, 4001,
                                        user_id=shop.fake_acc.current_user_id)) == ["no_change"]
    assert [c.by_agent for c in await storage.lead_status_events.of_lead(shop.org_id, shop.lead_id)] == [True]
    # Moved to the same stage by a person long after our write: not ours.
    record = await storage.actions.by_key(shop.org_id, "turn_x:a0")
    await storage.actions.collection.update_one({"_id": record.id},
                                                {"$set": {"updated_at": utcnow() - timedelta(hours=2)}})
    await feed(shop, status_body(shop.fake_acc, shop.lead_id, 4002, 4001, stamp=int(utcnow().timestamp()) + 5))
    assert [c.by_agent for c in await storage.lead_status_events.of_lead(shop.org_id, shop.lead_id)] == [True, False]
