from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from core.models.base import OrgDocument


class ConversationState(StrEnum):
    BOT_ACTIVE = "bot_active"
    HANDED_OFF = "handed_off"
    PAUSED = "paused"
    CLOSED = "closed"  # the lead was won, lost or deleted, the talk closed, or the lead left the agents' stages


class Conversation(OrgDocument):
    conversation_key: str  # "chat:<kommo chat id>" or "lead:<id>"
    agent_id: str | None = None
    lead_id: int | None = None
    contact_id: int | None = None
    chat_id: str | None = None
    talk_id: int | None = None
    origin: str | None = None  # whatsapp, telegram, ...
    state: ConversationState = ConversationState.BOT_ACTIVE
    state_reason: str | None = None
    handed_off_at: datetime | None = None
    replies_count: int = 0
    follow_ups_sent: int = 0
    summary: str = ""
    last_customer_at: datetime | None = None
    last_reply_at: datetime | None = None
    pending_turn_id: str | None = None  # claimed but not finished: a redelivery resumes it
    turn_attempts: int = 0  # runs of the pending turn; past a limit it is handed to a human
    # The last finished turn (counters move once per turn). "" rather than None: nx-27017's
    # updates do not match `$ne` against a null field (see docs/ARCHITECTURE.md).
    last_turn_id: str = ""
    last_reply_text: str = ""  # to recognise a manager relaying our note-draft as-is
    reply_context: dict[str, Any] = Field(default_factory=dict)  # e.g. salesbot return_url
    out_of_hours_notified_day: str | None = None
    # What the conversation was closed for: a customer message on another lead or talk opens it again.
    closed_lead_id: int | None = None
    closed_talk_id: int | None = None


class Message(OrgDocument):
    conversation_id: str
    role: str  # customer | agent | human
    text: str
    kommo_message_id: str | None = None
    turn_id: str | None = None
    sources: list[dict[str, Any]] = Field(default_factory=list)
    usage: dict[str, Any] = Field(default_factory=dict)
    attachment: dict[str, Any] | None = None  # voice/picture/file: type, link, file_name
    author_name: str | None = None
