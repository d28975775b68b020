"""Errors of the conversation engine. The task layer retries the transient ones; a turn that keeps
failing ends in a handoff note and an alert, never in silence."""

from __future__ import annotations

from core.errors import KommoAgentError


class RetryLater(KommoAgentError):
    """A transient failure (Kommo 429/5xx/timeout, a busy conversation, a database blip):
    the task layer retries with backoff; nothing has been lost."""

    code = "retry_later"

    def __init__(self, message: str, countdown: float | None = None, **params) -> None:
        super().__init__(message, **params)
        self.countdown = countdown


class OrganisationBusy(RetryLater):
    """All of an organisation's turn slots are taken (it is flooding): its task steps aside for
    others and comes back shortly. Flow control, not a failure: it uses up no retries."""

    code = "organisation_busy"


class ReplyWithheld(KommoAgentError):
    """The conversation changed hands between the decision and the send (a manager took it
    over): the customer-visible effect was not made, on purpose."""

    code = "reply_withheld"


class ConversationBusy(KommoAgentError):
    """Another worker holds this conversation's turn; the caller retries later."""

    code = "conversation_busy"


class AgentTie(KommoAgentError):
    """Two enabled agents are equally specific for one lead's stage: an admin must narrow one."""

    code = "agent_tie"
