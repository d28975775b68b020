"""The result of one agent turn (and its validated tool calls), as the conversation engine and the test
chat consume it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from core.models.events import ActionState
from core.usage.metering import TurnUsage

EXECUTED_KINDS = ("move_lead_stage", "create_task", "update_lead_field")


@dataclass
class PlannedAction:
    """A validated tool call. The runtime never executes it: the conversation engine executes
    the `executable` ones through core/kommo and journals every one under `key`."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    valid: bool = False
    refusal_reason: str | None = None
    would_do: bool = False  # dry run: shown as "would do", never executed
    key: str = ""  # idempotency key for the action journal: "<turn_id>:a<n>:<kind>"
    call_id: str = ""

    @property
    def executable(self) -> bool:
        return self.valid and not self.would_do

    @property
    def state(self) -> ActionState:
        """The journal state this action starts in."""
        if not self.valid:
            return ActionState.REFUSED
        return ActionState.PLANNED if self.would_do else ActionState.SENDING

    def describe(self) -> str:
        prefix = "would do" if self.would_do and self.valid else ("refused" if not self.valid else "do")
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        tail = f" ({self.refusal_reason})" if self.refusal_reason else ""
        return f"{prefix}: {self.kind}({args}){tail}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": self.params, "valid": self.valid,
                "refusal_reason": self.refusal_reason, "would_do": self.would_do, "key": self.key}



@dataclass
class TurnResult:
    turn_id: str
    reply_text: str  # "" = nothing to send
    language: str
    mode: str  # llm | extractive | handoff_on_error
    dry_run: bool = False
    sources: list[dict[str, Any]] = field(default_factory=list)  # cited: ref, source_id, title, heading...
    planned_actions: list[PlannedAction] = field(default_factory=list)
    handoff: bool = False
    handoff_reason: str | None = None
    usage: TurnUsage = field(default_factory=TurnUsage)
    summary: str = ""  # rolling summary of history older than what the prompt kept
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage: retrieve, llm
    relevance: dict[str, Any] = field(default_factory=dict)  # the relevance floor's verdict: kind, signals
    # What the outgoing-reply checks removed (ungrounded claims, claims of actions not done).
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def executable_actions(self) -> list[PlannedAction]:
        """Side effects the engine should perform through core/kommo (never in dry run).
        A handoff is signalled by `handoff`, not executed from this list."""
        return [a for a in self.planned_actions if a.executable and a.kind in EXECUTED_KINDS]


    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["planned_actions"] = [a.to_dict() for a in self.planned_actions]
        return data
