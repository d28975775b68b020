"""Inbound events -> conversation state. A customer message is stored (once, by its Kommo id)
and a turn is scheduled after the debounce window; a manager writing in the chat takes over."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo.errors import DuplicateKeyError

from core.clock import utcnow
from core.conversations import lead_events
from core.conversations.context import EngineDeps
from core.conversations.errors import RetryLater
from core.conversations.handoff import hand_off
from core.conversations.turns import release_bot, run_turn
from core.ids import new_id
from core.kommo.intake.parser import ACTIONABLE_KINDS, event_data
from core.logging import get_logger
from core.models.conversation import Conversation, ConversationState, Message
from core.models.events import EventStatus, WebhookEvent

log = get_logger(__name__)
TWIN_WINDOW_S = 600  # an add_message and a widget_request with the same text this close are one message
TWIN_GRACE_S = 3.0  # a widget_request for a lead with no conversation waits this long for its twin
TWIN_LOOKBACK = 6


def _int(value: Any) -> int | None:
    """An id from a stored body; out of int64 (which intake refuses anyway) is no id."""
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**63 else None


@dataclass
class ChatMessage:
    """The fields of a chat message event we use, whatever hook it came from."""

    message_id: str
    text: str
    lead_id: int | None
    chat_id: str | None
    contact_id: int | None
    talk_id: int | None
    origin: str | None
    author_name: str | None
    attachment: dict[str, Any] | None

    @property
    def conversation_key(self) -> str:
        # Without a chat or a lead (a Salesbot on a contact, `lead: null`), the contact is the
        # customer; with none of them, the message stands alone. Never `lead:None`, which
        # would merge unrelated customers into one conversation.
        if self.chat_id:
            return f"chat:{self.chat_id}"
        if self.lead_id:
            return f"lead:{self.lead_id}"
        if self.contact_id:
            return f"contact:{self.contact_id}"
        return f"message:{self.message_id}"

    @classmethod
    def from_kommo(cls, data: dict[str, Any], fallback_id: str) -> ChatMessage:
        author = data.get("author") if isinstance(data.get("author"), dict) else {}
        attachment = data.get("attachment") if isinstance(data.get("attachment"), dict) else None
        lead_id = _int(data.get("entity_id") or data.get("element_id"))
        if str(data.get("entity_type") or data.get("element_type") or "lead") not in ("lead", "2", "leads"):
            lead_id = None  # a chat of a contact/customer: no lead to act on
        return cls(
            message_id=str(data.get("id") or fallback_id), text=str(data.get("text") or "").strip(),
            lead_id=lead_id, chat_id=str(data["chat_id"]) if data.get("chat_id") else None,
            contact_id=_int(data.get("contact_id")), talk_id=_int(data.get("talk_id")),
            origin=str(data.get("origin")) if data.get("origin") else None,
            author_name=author.get("name"), attachment=attachment,
        )


async def _conversation_for(deps: EngineDeps, org_id: str, msg: ChatMessage,
                            changes: dict[str, Any] | None = None) -> Conversation:
    """Found or created in one write, which also applies `changes` and follows the chat to the
    lead and talk Kommo names now."""
    changes = {**{k: v for k, v in (("lead_id", msg.lead_id), ("talk_id", msg.talk_id)) if v}, **(changes or {})}
    return await deps.storage.conversations.get_or_create(org_id, msg.conversation_key, {
        "lead_id": msg.lead_id, "contact_id": msg.contact_id, "chat_id": msg.chat_id,
        "talk_id": msg.talk_id, "origin": msg.origin,
    }, changes)


async def accept_customer_message(deps: EngineDeps, org_id: str, msg: ChatMessage,
                                  reply_context: dict[str, Any] | None = None) -> str:
    # Marked as waiting before the message is stored: if storing fails, the event's task is
    # retried and the mark is simply made again.
    changes: dict[str, Any] = {"last_customer_at": utcnow(), "follow_ups_sent": 0}
    if reply_context:
        changes["reply_context"] = reply_context
    conv = await _conversation_for(deps, org_id, msg, changes)
    if not reply_context and await _widget_twin(deps, org_id, conv, msg.text) is not None:
        return "twin_of_widget_request"  # the widget_request already brought this message: one turn
    if lead_events.reopen_for(conv, msg.lead_id, msg.talk_id):
        await lead_events.reopen(deps, org_id, conv)  # a new lead or talk: a new conversation for the agent
        conv.state = ConversationState.BOT_ACTIVE
    message = Message(_id=new_id("msg"), org_id=org_id, conversation_id=conv.id, role="customer",
                      text=msg.text, kommo_message_id=msg.message_id, attachment=msg.attachment,
                      author_name=msg.author_name)
    try:
        await deps.storage.messages.insert(org_id, message)
    except Exception as exc:  # AlreadyExists wraps DuplicateKeyError: Kommo re-sent the message
        if not isinstance(exc.__cause__, DuplicateKeyError) and "duplicate" not in str(exc):
            raise
        existing = await deps.storage.messages.list(org_id, {"kommo_message_id": msg.message_id}, limit=1)
        message = existing[0]
    if deps.debounce_s <= 0:
        # No burst window: answer in this task rather than paying a second trip through the broker.
        return await run_turn(deps, org_id, conv.id, message.id)
    await deps.queue.schedule_turn(org_id, conv.id, message.id, deps.debounce_s)
    return "scheduled"


async def our_own_message(deps: EngineDeps, org_id: str, msg: ChatMessage) -> bool:
    """An outgoing message Kommo echoes back is ours when the action journal holds a reply we
    sent on that lead recently with the same text, or one whose result names the message's id
    (Chats API). Kommo does not document who the webhook's `author` is, so it decides nothing."""
    if not msg.lead_id:
        return False
    since = utcnow() - lead_events.OWN_WRITE_WINDOW
    for record in await deps.storage.actions.sent_for_lead(org_id, msg.lead_id, since):
        if not record.kind.startswith("reply."):
            continue
        if msg.message_id in {str(v) for v in record.result.values() if isinstance(v, str | int)}:
            return True
        if _same_text(str(record.params.get("text") or ""), msg.text):
            return True
    return False


async def accept_manager_message(deps: EngineDeps, org_id: str, msg: ChatMessage, *,
                                 from_bot: bool = False) -> str:
    """A human wrote in the chat: the bot goes quiet — unless the human is relaying the
    note-draft we wrote for them, which is how the note_draft delivery mode is meant to work.
    Another bot of the account (`from_bot`) is recorded but takes nothing over."""
    conv = await _conversation_for(deps, org_id, msg)
    await deps.storage.messages.insert(org_id, Message(
        _id=new_id("msg"), org_id=org_id, conversation_id=conv.id, role="bot" if from_bot else "human",
        text=msg.text, author_name=msg.author_name))
    if conv.last_reply_text and _same_text(conv.last_reply_text, msg.text):
        return "relayed_draft"
    if from_bot:
        return "other_bot"
    if conv.state == ConversationState.BOT_ACTIVE:
        await hand_off(deps, org_id, conv, reason="manager_replied", notify_humans=False)
    return "handed_off"


def _same_text(a: str, b: str) -> bool:
    def norm(s: str) -> str:
        return " ".join(s.split()).casefold()

    return norm(a) == norm(b)


async def handle_event(deps: EngineDeps, org_id: str, event: WebhookEvent) -> str:
    """Route one stored webhook event. Returns a short outcome for logs and tests."""
    payload = event.payload or {}
    if event.source == "kommo" and payload.get("subdomain"):
        await _follow_rename(deps, org_id, str(payload["subdomain"]))
    data = event_data(event) if event.source == "kommo" and event.kind in ACTIONABLE_KINDS else {}
    status = EventStatus.DONE
    if event.kind == "message.add":
        outcome = await accept_customer_message(deps, org_id, ChatMessage.from_kommo(data, event.id))
    elif event.kind == "outgoing_message.add":
        msg = ChatMessage.from_kommo(data, event.id)
        if await our_own_message(deps, org_id, msg):
            outcome, status = "own_write", EventStatus.IGNORED
        else:
            author = data.get("author") if isinstance(data.get("author"), dict) else {}
            outcome = await accept_manager_message(deps, org_id, msg, from_bot=author.get("type") == "bot")
    elif event.kind == "lead.status":
        outcome = await lead_events.lead_status_changed(deps, org_id, event, data)
    elif event.kind == "lead.delete":
        outcome = await lead_events.lead_deleted(deps, org_id, data)
    elif event.kind == "talk.update":
        outcome = await lead_events.talk_updated(deps, org_id, data)
    elif event.kind == "unsorted.delete":
        outcome = await lead_events.unsorted_resolved(deps, org_id, data)
    elif event.kind == "chats.message":
        outcome = await _chats_takeover(deps, org_id, _chats_message(payload, event.id))
    elif event.kind.startswith("salesbot"):
        outcome = await _salesbot_request(deps, org_id, event)
    else:
        outcome = "no_action"
    await deps.storage.events.set_status(org_id, event.id, status,
                                         "our own write echoed back" if status == EventStatus.IGNORED else None)
    return outcome


async def _follow_rename(deps: EngineDeps, org_id: str, subdomain: str) -> None:
    # Webhooks carry the account's current subdomain: a renamed account is followed here, on a
    # long-lived token too (the refresh path can only follow it with a refresh token).
    try:
        await deps.kommo.follow_reported_subdomain(org_id, subdomain)
    except Exception as exc:  # noqa: BLE001 - the event itself must still be handled
        log.warning("following a reported subdomain failed", org_id=org_id, error=str(exc)[:200])


async def _salesbot_request(deps: EngineDeps, org_id: str, event: WebhookEvent) -> str:
    """A Salesbot `widget_request`: the bot waits for our answer at its single-use `return_url`.

    Kommo usually sends the same customer message as an `add_message` webhook too: the two are
    one turn. The widget_request joins the lead's conversation; if the message is already there
    (its twin), no second message is stored, the return_url is attached and the turn that waits
    for it runs now (or, if that turn already ended without a reply, the bot is released)."""
    payload = event.payload or {}
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    lead_id = _int(payload.get("lead_id") or data.get("lead_id"))
    return_url = str(payload.get("return_url") or "")
    text = str(data.get("message") or "").strip()
    now = deps.clock()
    context = {"return_url": return_url, "at": now.isoformat()}
    conv = await deps.storage.conversations.latest_for_lead(org_id, lead_id) if lead_id else None
    if conv is None and lead_id and _age_s(event, now) < TWIN_GRACE_S:
        # Its add_message twin is usually a moment behind: let it make the conversation first,
        # so the chat has one conversation, not one per webhook kind.
        raise RetryLater("waiting a moment for the message's add_message twin", countdown=1.0)
    if conv is not None:
        old = (conv.reply_context or {}).get("return_url")
        if old and old != return_url:
            await release_bot(deps, org_id, conv, old, "superseded", f"sb:{_continue_id(old)}:release")
        twin = await _message_twin(deps, org_id, conv, text, now)
        if twin is not None:
            conv = await deps.storage.conversations.update(org_id, conv.id, {"reply_context": context}) or conv
            if twin.turn_id is None or twin.turn_id == conv.pending_turn_id:
                return await run_turn(deps, org_id, conv.id, None)
            await release_bot(deps, org_id, conv, return_url, "answered", f"sb:{_continue_id(return_url)}:release")
            return "released"
    msg = ChatMessage(message_id=f"sb:{event.id}", text=text, lead_id=lead_id,
                      chat_id=conv.chat_id if conv is not None else (str(data["chat_id"]) if data.get("chat_id")
                                                                      else None),
                      contact_id=_int(data.get("contact_id")), talk_id=_int(data.get("talk_id")),
                      origin=data.get("origin"), author_name=None, attachment=None)
    return await accept_customer_message(deps, org_id, msg, context)


def _age_s(event: WebhookEvent, now) -> float:
    received = event.received_at or event.created_at
    return (now - received).total_seconds() if received else 0.0


def _continue_id(return_url: str) -> str:
    return return_url.rstrip("/").rsplit("/", 1)[-1][:64]


def _fresh(message: Message, now) -> bool:
    return message.created_at is not None and (now - message.created_at).total_seconds() < TWIN_WINDOW_S


async def _message_twin(deps: EngineDeps, org_id: str, conv: Conversation, text: str, now) -> Message | None:
    """The customer message a widget_request repeats: same text, recent, from a webhook."""
    for message in reversed(await deps.storage.messages.recent(org_id, conv.id, limit=TWIN_LOOKBACK)):
        if (message.role == "customer" and not (message.kommo_message_id or "").startswith("sb:")
                and _same_text(message.text, text) and _fresh(message, now)):
            return message
    return None


async def _widget_twin(deps: EngineDeps, org_id: str, conv: Conversation, text: str) -> Message | None:
    """The widget_request message an add_message repeats. Only looked for while the
    conversation holds a fresh return_url, so other traffic pays no extra read."""
    if not (conv.reply_context or {}).get("return_url"):
        return None
    now = deps.clock()
    for message in reversed(await deps.storage.messages.recent(org_id, conv.id, limit=TWIN_LOOKBACK)):
        if (message.role == "customer" and (message.kommo_message_id or "").startswith("sb:")
                and _same_text(message.text, text) and _fresh(message, now)):
            return message
    return None


async def _chats_takeover(deps: EngineDeps, org_id: str, msg: ChatMessage) -> str:
    """A Chats API hook is a manager writing in our own channel: it takes over only a
    conversation of that channel the bot is running; a hook about any other chat is no
    takeover of anything (and creates no conversation)."""
    conv = await deps.storage.conversations.by_key(org_id, msg.conversation_key) if msg.chat_id else None
    if conv is None:
        return "not_our_conversation"
    return await accept_manager_message(deps, org_id, msg)


def _chats_message(payload: dict[str, Any], fallback_id: str) -> ChatMessage:
    """A Chats API hook: a manager (or another bot) wrote to the customer in our own channel."""
    outer = payload.get("message") if isinstance(payload.get("message"), dict) else {}
    inner = outer.get("message") if isinstance(outer.get("message"), dict) else {}
    conversation = outer.get("conversation") if isinstance(outer.get("conversation"), dict) else {}
    sender = outer.get("sender") if isinstance(outer.get("sender"), dict) else {}
    return ChatMessage(message_id=str(inner.get("id") or fallback_id), text=str(inner.get("text") or ""),
                       lead_id=None, chat_id=str(conversation.get("id")) if conversation.get("id") else None,
                       contact_id=None, talk_id=None, origin="chats_api", author_name=sender.get("name"),
                       attachment=None)
