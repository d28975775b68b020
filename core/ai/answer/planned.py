"""A tool call after validation: what the runtime hands to the conversation engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.models.events import ActionState


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
