"""The result of one agent turn, as the conversation engine and the test chat consume it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from core.ai.answer.planned import PlannedAction
from core.usage.metering import TurnUsage

EXECUTED_KINDS = ("move_lead_stage", "create_task", "update_lead_field")


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

    @property
    def executable_actions(self) -> list[PlannedAction]:
        """Side effects the engine should perform through core/kommo (never in dry run).
        A handoff is signalled by `handoff`, not executed from this list."""
        return [a for a in self.planned_actions if a.executable and a.kind in EXECUTED_KINDS]


    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["planned_actions"] = [a.to_dict() for a in self.planned_actions]
        return data
