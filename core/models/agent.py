from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, field_serializer

from core.models.base import OrgDocument


class LanguagePolicy(StrEnum):
    MIRROR = "mirror"  # answer in the customer's language
    FIXED = "fixed"


class AgentAction(StrEnum):
    REPLY = "reply"
    MOVE_LEAD_STAGE = "move_lead_stage"
    CREATE_TASK = "create_task"
    HANDOFF_TO_HUMAN = "handoff_to_human"
    UPDATE_LEAD_FIELD = "update_lead_field"


class DeliveryMode(StrEnum):
    NOTE_DRAFT = "note_draft"  # default: a draft in an internal note for a manager to copy; reaches no customer
    SALESBOT = "salesbot"
    SALESBOT_RUN = "salesbot_run"
    CHATS_API = "chats_api"


class StageRule(BaseModel):
    pipeline_id: int
    status_id: int
    when: str = ""  # plain-words rule: when the agent should move a lead here


class WorkingHours(BaseModel):
    timezone: str | None = None  # None: the Kommo account's timezone (never UTC by default)
    # weekday (0 = Monday) -> [start "HH:MM", end "HH:MM"]; empty = always on
    days: dict[int, tuple[str, str]] = Field(default_factory=dict)
    out_of_hours_reply: str | None = None

    @field_serializer("days")
    def _string_keys(self, days: dict[int, tuple[str, str]]) -> dict[str, list[str]]:
        # BSON documents need string keys; pydantic reads "0".."6" back as ints.
        return {str(k): list(v) for k, v in days.items()}


class FollowUpPolicy(BaseModel):
    enabled: bool = False
    after_hours: float = 24.0
    max_times: int = 1
    text: str | None = None


class ReplyMode(StrEnum):
    AUTOMATIC = "automatic"
    APPROVAL = "approval"  # each draft waits for an approver in the console


class ApprovalTimeoutAction(StrEnum):
    HANDOFF = "handoff"
    SEND = "send"


class Agent(OrgDocument):
    name: str
    enabled: bool = True
    persona: str = "a polite sales assistant"
    instructions: str = ""
    language_policy: LanguagePolicy = LanguagePolicy.MIRROR
    language: str = "ru"
    tone: str = "friendly and concise"
    goals: str = ""
    model: str | None = None  # None: the deployment's default LLM model
    temperature: float = 0.3
    allowed_actions: list[AgentAction] = Field(
        default_factory=lambda: [AgentAction.REPLY, AgentAction.HANDOFF_TO_HUMAN]
    )
    pipeline_id: int | None = None  # scope: None = every incoming message of the account
    stage_ids: list[int] = Field(default_factory=list)  # scope within the pipeline; empty = all
    stage_rules: list[StageRule] = Field(default_factory=list)  # stages it may move leads to
    # Lead fields it may write: exactly these (empty: none, even with update_lead_field allowed).
    writable_field_ids: list[int] = Field(default_factory=list)
    # Lead fields whose values go into its prompt as lead facts, besides the writable ones
    # (name, price and tags always do); empty: no other custom field.
    readable_field_ids: list[int] = Field(default_factory=list)
    handoff_rules: str = ""
    max_replies_per_conversation: int = 50
    delivery_mode: DeliveryMode = DeliveryMode.NOTE_DRAFT
    reply_mode: ReplyMode = ReplyMode.AUTOMATIC
    approval_timeout_s: int = Field(default=900, ge=30)  # a card unanswered this long follows the rule below
    approval_timeout_action: ApprovalTimeoutAction = ApprovalTimeoutAction.HANDOFF
    working_hours: WorkingHours = Field(default_factory=WorkingHours)
    follow_up: FollowUpPolicy = Field(default_factory=FollowUpPolicy)
    handoff_resume_after_hours: float | None = 24.0
