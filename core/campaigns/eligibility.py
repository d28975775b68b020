"""Who may be written to now, decided before any text is prepared (no LLM tokens are spent on
a lead that will be skipped).

- WhatsApp: free-form messages only within 24 h of the customer's last message; a WhatsApp
  conversation whose customer wrote longer ago (or never) is skipped, with the reason.
- A lead with no conversation we know of: `note_draft` (a draft note for a human) and
  `salesbot_run` (Kommo's bot writes into the lead's own channel) can still start the contact,
  so they go ahead; `chats_api` needs an open chat in our channel, so it is skipped with
  "no open chat to write into". (`salesbot` — answering a waiting widget_request — cannot carry
  a campaign at all and is refused when the campaign is started.)
"""

from __future__ import annotations

from datetime import datetime

from core.conversations.followups import WHATSAPP_ORIGINS, outside_channel_window
from core.models.agent import DeliveryMode
from core.models.conversation import Conversation

NO_CHAT = "no open chat to write into"


def pick_conversation(conversations: list[Conversation]) -> Conversation | None:
    """A lead may have several chats: the one the customer used last is the one to judge by."""
    if not conversations:
        return None
    return max(conversations, key=lambda c: (c.last_customer_at is not None, c.last_customer_at or c.created_at))


def skip_reason(conv: Conversation | None, mode: DeliveryMode, now: datetime) -> str | None:
    if conv is not None and outside_channel_window(conv, now):
        if conv.last_customer_at is None:
            return "WhatsApp 24-hour window closed: the customer has never written"
        hours = (now - conv.last_customer_at).total_seconds() / 3600
        return f"WhatsApp 24-hour window closed: the customer last wrote {hours:.0f} h ago"
    if mode == DeliveryMode.CHATS_API:
        ctx = conv.reply_context if conv else {}
        if not ctx.get("conversation_id") or not isinstance(ctx.get("receiver"), dict):
            return NO_CHAT
    return None


def is_whatsapp(conv: Conversation | None) -> bool:
    return conv is not None and (conv.origin or "").lower() in WHATSAPP_ORIGINS
