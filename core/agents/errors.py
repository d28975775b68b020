"""Agent set-up errors; `code` names the rule broken, `params` what broke it."""

from __future__ import annotations

from core.errors import InvalidInput


class AgentFieldInvalid(InvalidInput):
    """A wizard or edit value breaks a rule. `code` is per rule (see `core/agents/fields.py`)."""

    def __init__(self, code: str, message: str, **params) -> None:
        super().__init__(message, **params)
        self.code = code
