"""Campaigns (рассылки): one operator message to the leads of a pipeline stage.

A `Campaign` holds what to send and its progress; a `CampaignTarget` per (campaign, lead) holds
that lead's facts, the exact text prepared for it and the outcome. Targets are the source of
truth: counters are recounted from them, and a resumed campaign continues with the targets
still pending.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from core.models.agent import DeliveryMode
from core.models.base import OrgDocument


class CampaignStatus(StrEnum):
    DRAFT = "draft"  # created; leads not yet listed
    RUNNING = "running"
    PAUSED = "paused"  # Kommo connection unusable (needs re-auth, blocked): resume after fixing it
    CANCELLED = "cancelled"
    DONE = "done"
    FAILED = "failed"  # could not even list the leads (e.g. the stage is gone)


ACTIVE = (CampaignStatus.DRAFT, CampaignStatus.RUNNING)
FINISHED = (CampaignStatus.CANCELLED, CampaignStatus.DONE, CampaignStatus.FAILED)


class Campaign(OrgDocument):
    agent_id: str
    agent_name: str
    delivery_mode: DeliveryMode
    pipeline_id: int
    pipeline_name: str
    stage_id: int
    stage_name: str
    tag: str | None = None
    template: str
    personalise: bool = False
    status: CampaignStatus = CampaignStatus.DRAFT
    status_reason: str = ""
    targets_ready: bool = False
    total: int = 0
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    started_by: str = "cli"
    updated_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def done_count(self) -> int:
        return self.sent + self.skipped + self.failed


class TargetState(StrEnum):
    PENDING = "pending"
    PREPARED = "prepared"  # the text is fixed (and paid for, if an LLM rewrote it); sending may follow
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"


OPEN_TARGET_STATES = (TargetState.PENDING, TargetState.PREPARED)


class CampaignTarget(OrgDocument):
    """`_id` is `<campaign id>:<lead id>`."""

    campaign_id: str
    lead_id: int
    lead_name: str = ""
    facts: dict[str, Any] = Field(default_factory=dict)
    state: TargetState = TargetState.PENDING
    text: str = ""
    personalised: bool = False
    reason: str = ""
    updated_at: datetime | None = None

    @staticmethod
    def key(campaign_id: str, lead_id: int) -> str:
        return f"{campaign_id}:{int(lead_id)}"
