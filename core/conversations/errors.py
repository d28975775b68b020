from __future__ import annotations

from core.errors import KommoAgentError


class RetryLater(KommoAgentError):
    """A transient failure (Kommo 429/5xx/timeout, a busy conversation, a database blip):
    the task layer retries with backoff; nothing has been lost."""

    code = "retry_later"

    def __init__(self, message: str, countdown: float | None = None, **params) -> None:
        super().__init__(message, **params)
        self.countdown = countdown


class TurnFailed(KommoAgentError):
    """A permanent failure of a turn: ends in a handoff note and an alert, never in silence."""

    code = "turn_failed"
