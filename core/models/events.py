from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from core.clock import utcnow
from core.models.base import OrgDocument


class EventStatus(StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    UNHANDLED = "unhandled"  # well-formed, but not an event we act on
    IGNORED = "ignored"  # e.g. caused by our own write
    FAILED = "failed"
    PARKED = "parked"  # kept failing (a poison event): set aside with the reason, operators alerted


class WebhookEvent(OrgDocument):
    source: str = "kommo"  # kommo | salesbot | chats
    kind: str  # e.g. message.add, lead.status
    dedupe_key: str
    raw_body: str
    content_type: str = ""
    payload: dict[str, Any] = Field(default_factory=dict)
    status: EventStatus = EventStatus.RECEIVED
    error: str | None = None
    received_at: datetime = Field(default_factory=utcnow)
    attempts: int = 0
    claimed_at: datetime | None = None  # last time a worker claimed it (the sweep leaves it alone a while)


class ActionState(StrEnum):
    PLANNED = "planned"  # dry run: "would do"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    REFUSED = "refused"  # validation refused the tool call (or the effect was no longer wanted)
    MAYBE_SENT = "maybe_sent"  # the outcome is unknown and Kommo cannot be asked: a human checks, never a resend


class ActionRecord(OrgDocument):
    """The action journal: one record per side effect, keyed so a retry finds it."""

    idempotency_key: str
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    state: ActionState
    conversation_id: str | None = None
    agent_id: str | None = None
    lead_id: int | None = None
    dry_run: bool = False
    error: str | None = None
    result: dict[str, Any] = Field(default_factory=dict)
    updated_at: datetime = Field(default_factory=utcnow)


class LeadStatusEvent(OrgDocument):
    """A lead moved to another stage in Kommo (`status_lead` webhook), kept for outcome reports:
    `won` = Closed-won (142), `lost` = Closed-lost (143). `_id` is `lse_<webhook event id>`, so a
    redelivered event is stored once. `day` is the UTC day of `at` ('YYYY-MM-DD')."""

    agent_id: str | None = None  # the agent of the lead's conversation, if one is known
    conversation_id: str | None = None
    lead_id: int
    pipeline_id: int | None = None
    old_pipeline_id: int | None = None
    old_status_id: int | None = None
    new_status_id: int
    won: bool = False
    lost: bool = False
    by_agent: bool = False  # the move was one our agent made (found in the action journal)
    at: datetime
    day: str
    event_id: str
