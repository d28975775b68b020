"""Inbound events -> conversation state. A customer message is stored (once, by its Kommo id)
and a turn is scheduled after the debounce window; a manager writing in the chat takes over."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo.errors import DuplicateKeyError

from core.clock import utcnow
from core.conversations import lead_events
from core.conversations.context import EngineDeps
from core.conversations.handoff import hand_off
from core.conversations.turns import run_turn
from core.ids import new_id
from core.kommo.intake.parser import ACTIONABLE_KINDS, event_data
from core.logging import get_logger
from core.models.conversation import Conversation, ConversationState, Message
from core.models.events import EventStatus, WebhookEvent

log = get_logger(__name__)


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


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
        return f"chat:{self.chat_id}" if self.chat_id else f"lead:{self.lead_id}"

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
        outcome = await accept_manager_message(deps, org_id, _chats_message(payload, event.id))
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
    """A Salesbot `widget_request`: the bot waits for our answer at `return_url`."""
    payload = event.payload or {}
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    lead_id = _int(payload.get("lead_id") or data.get("lead_id"))
    msg = ChatMessage(message_id=f"sb:{event.id}", text=str(data.get("message") or "").strip(),
                      lead_id=lead_id, chat_id=str(data["chat_id"]) if data.get("chat_id") else None,
                      contact_id=_int(data.get("contact_id")), talk_id=_int(data.get("talk_id")),
                      origin=data.get("origin"), author_name=None, attachment=None)
    return await accept_customer_message(deps, org_id, msg, {"return_url": payload.get("return_url")})


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
