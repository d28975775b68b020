"""Approval mode end to end: customer messages come in through the real Kommo intake, a real
worker drafts the reply and hands it to core/approvals, the console shows the card to both
approvers (fake Bot API), and their buttons go through the real dispatcher. Checked at the fake
Kommo: Send (two approvers at once: exactly one wins, the other is told who), Edit, Reject (a
handoff), a stale card refused, and a card nobody answered in time following the agent's rule."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bot.notify import TelegramSender
from core.kommo.delivery.replies import DRAFT_PREFIX
from core.models.agent import ApprovalTimeoutAction, ReplyMode
from core.models.org import Role
from core.orgs import create_agent
from tests.fixtures.campaigns import add_lead, drafts
from tests.fixtures.engine import message_body
from tests.fixtures.telegram import add_member, org_with_owner, user

_users = itertools.count(19_500)
_msgs = itertools.count(1)


def replies(fake_acc, lead_id: int) -> list[str]:
    """The texts delivered to the lead in note_draft mode (the note's label line dropped)."""
    return [d.removeprefix(DRAFT_PREFIX) for d in drafts(fake_acc, lead_id) if d.startswith(DRAFT_PREFIX)]


class Shop:
    def __init__(self, stack, owner, editor, org_id, agent, fake_acc):
        self.stack, self.owner, self.editor, self.org_id, self.agent, self.fake_acc = (
            stack, owner, editor, org_id, agent, fake_acc)

    async def customer_says(self, lead_id: int, chat_id: str, text: str, *, outgoing: bool = False) -> None:
        kommo = await self.stack.services.kommo()
        account = await self.stack.services.storage.kommo_accounts.for_org(self.org_id)
        body = message_body(self.fake_acc, f"ap-{next(_msgs)}", text, chat_id=chat_id, lead_id=lead_id,
                            outgoing=outgoing, author_type="user" if outgoing else "external")
        await kommo.intake.kommo_webhook(kommo.connections.hook_token(account), body,
                                         "application/x-www-form-urlencoded")

    async def card(self, lead_id: int, *, after: int = 0) -> dict:
        """The newest card for the lead (waits for the worker to draft it) once both approvers got it."""
        col = self.stack.services.storage.db["approvals"]

        async def drafted():
            cards = [c async for c in col.find({"org_id": self.org_id, "lead_id": lead_id}, sort=[("created_at", 1)])]
            return len(cards) > after and cards[-1]
        card = await self.stack.until(drafted, what=f"a draft for lead {lead_id}")
        console = self.stack.console
        sender = TelegramSender(console.bot, console.dp["i18n_instance"], self.stack.services.storage)
        await console.dp["delivery"].deliver_all(sender)
        return await col.find_one({"_id": card["_id"]})

    async def settled(self, card_id: str, *statuses: str) -> dict:
        col = self.stack.services.storage.db["approvals"]

        async def done():
            doc = await col.find_one({"_id": card_id})
            return doc["status"] in statuses and doc
        card = await self.stack.until(done, what=f"card {card_id} to become {statuses}")
        console = self.stack.console
        await TelegramSender(console.bot, console.dp["i18n_instance"], self.stack.services.storage).cards.sync(
            console.bot)
        return card

    def copy(self, who, card: dict):
        """(message json, its buttons by text) of the card as `who` sees it."""
        fake = self.stack.telegram
        m = fake.messages[(who.id, int(card["copies"][str(who.id)]))]
        return fake._message_json(m), {b["text"]: b for b in m.buttons()}, m.text


@pytest.fixture
async def shop(console_stack):
    stack = console_stack
    owner, editor = user(next(_users), first_name="Anna", language_code="en"), user(next(_users), first_name="Boris",
                                                                                    language_code="en")
    membership = await org_with_owner(stack.services, owner, "Approvals Inc")
    org_id = membership.org.id
    await add_member(stack.services, org_id, editor, Role.EDITOR)
    fake_acc = stack.kommo.add_account(f"appr{owner.id}")
    kommo = await stack.services.kommo()
    await kommo.connections.connect_long_lived(org_id, fake_acc.subdomain, stack.kommo.book.issue_long_lived(fake_acc.id))
    agent = await create_agent(stack.services.storage, org_id, "Sales", "Sell.")
    await stack.services.storage.agents.update(org_id, agent.id, {"language": "en", "approval_timeout_s": 600})
    # Approval mode is switched on from the agent's card in the console.
    console = stack.console
    await console.send(owner, "/agents")
    await console.click(owner, "Sales")
    assert "Replies: automatic" in console.text(owner)
    await console.click(owner, "Turn on reply approval")
    assert "Replies: after approval in Telegram" in console.text(owner)
    assert "Unanswered for 10 min: I hand it to a human" in console.text(owner)
    agent = await stack.services.storage.agents.get(org_id, agent.id)
    assert agent.reply_mode == ReplyMode.APPROVAL
    return Shop(stack, owner, editor, org_id, agent, fake_acc)


@pytest.mark.timeout(600)
async def test_send_edit_reject_race_and_stale(shop):
    stack, console = shop.stack, shop.stack.console
    owner, editor = shop.owner, shop.editor

    # Send, pressed by both approvers at once: exactly one wins.
    lead = add_lead(shop.fake_acc, "Ivan")
    await shop.customer_says(lead, "c-send", "Do you deliver to Madrid?")
    card = await shop.card(lead)
    assert card["draft"] == "OK: Do you deliver to Madrid?" and drafts(shop.fake_acc, lead) == []  # nothing sent yet
    msg_a, buttons_a, text_a = shop.copy(owner, card)
    msg_b, buttons_b, _ = shop.copy(editor, card)
    assert "👤 Customer:\nDo you deliver to Madrid?" in text_a and "🤖 Draft:\nOK: Do you deliver" in text_a
    assert set(buttons_a) == {"✅ Send", "✏️ Edit", "🚫 Reject", "✏️ Correct this"}
    await asyncio.gather(console.press(owner, msg_a, buttons_a["✅ Send"]["callback_data"]),
                         console.press(editor, msg_b, buttons_b["✅ Send"]["callback_data"]))
    alerts = console.alerts()[-2:]
    assert sorted(alerts)[0].startswith("Already decided: ") and "Sending…" in alerts
    card = await shop.settled(card["_id"], "sent")
    assert replies(shop.fake_acc, lead) == ["OK: Do you deliver to Madrid?"]  # sent once, in note_draft mode
    winner = card["decided_by"]
    for who in (owner, editor):
        _, buttons, text = shop.copy(who, card)
        assert f"✅ Sent by {winner} at " in text and "✅ Send" not in buttons

    # Edit: the approver's next message is the reply instead of the draft.
    lead = add_lead(shop.fake_acc, "Olga")
    await shop.customer_says(lead, "c-edit", "Is assembly included?")
    card = await shop.card(lead)
    msg, buttons, _ = shop.copy(editor, card)
    await console.press(editor, msg, buttons["✏️ Edit"]["callback_data"])
    assert "Send the reply for the customer" in console.text(editor)
    _, _, owner_view = shop.copy(owner, await stack.services.storage.db["approvals"].find_one({"_id": card["_id"]}))
    assert "Boris is writing the reply" in owner_view
    await console.send(editor, "Yes, assembly is free in Madrid.")
    await shop.settled(card["_id"], "sent")
    assert replies(shop.fake_acc, lead) == ["Yes, assembly is free in Madrid."]

    # Reject: handed to a human in Kommo (the handoff note carries the draft), nothing sent.
    lead = add_lead(shop.fake_acc, "Petr")
    await shop.customer_says(lead, "c-reject", "I want a discount")
    card = await shop.card(lead)
    msg, buttons, _ = shop.copy(owner, card)
    await console.press(owner, msg, buttons["🚫 Reject"]["callback_data"])
    card = await shop.settled(card["_id"], "rejected")
    [note] = drafts(shop.fake_acc, lead)
    assert note.startswith("The AI agent handed the chat to a manager") and card["draft"] in note
    conv = await stack.services.storage.conversations.get(shop.org_id, card["conversation_id"])
    assert conv.state == "handed_off"
    assert "🚫 Rejected by Anna at " in shop.copy(editor, card)[2]

    # Stale: the customer wrote again before anyone decided; the old card cannot be sent.
    lead = add_lead(shop.fake_acc, "Nina")
    await shop.customer_says(lead, "c-stale", "What colours do you have?")
    first = await shop.card(lead)
    await shop.customer_says(lead, "c-stale", "Actually, never mind colours: what sizes?")
    await shop.card(lead, after=1)
    msg, buttons, _ = shop.copy(owner, first)
    await console.press(owner, msg, buttons["✅ Send"]["callback_data"])
    assert "stale" in console.alerts()[-1]
    first = await shop.settled(first["_id"], "stale")
    assert "⚠️ Stale" in shop.copy(owner, first)[2]
    assert "OK: What colours do you have?" not in replies(shop.fake_acc, lead)


@pytest.mark.timeout(600)
async def test_unanswered_card_follows_the_agent_rule(shop):
    stack = shop.stack
    await stack.console.click(shop.owner, "Switch the unanswered rule")
    assert "Unanswered for 10 min: I send the draft anyway" in stack.console.text(shop.owner)
    agent = await stack.services.storage.agents.get(shop.org_id, shop.agent.id)
    assert agent.approval_timeout_action == ApprovalTimeoutAction.SEND
    lead = add_lead(shop.fake_acc, "Lena")
    await shop.customer_says(lead, "c-late", "Are you open on Sunday?")
    card = await shop.card(lead)
    assert "If nobody answers by" in shop.copy(shop.owner, card)[2] and "I send the draft anyway" in shop.copy(
        shop.owner, card)[2]
    # Its time is up: the beat's task (run by the worker) applies the rule.
    await stack.services.storage.db["approvals"].update_one({"_id": card["_id"]}, {"$set": {"deadline_ts": 0.0}})
    stack.services.queue.app.send_task("inbound.approvals_expire")
    card = await shop.settled(card["_id"], "sent")
    assert replies(shop.fake_acc, lead) == ["OK: Are you open on Sunday?"]
    assert "Nobody answered in time: sent anyway" in shop.copy(shop.editor, card)[2]
