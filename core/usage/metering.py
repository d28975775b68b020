"""Usage metering of LLM calls: one UsageEvent per provider call, written once per key.

The idempotency key is derived from the turn id and the call's ordinal within the turn, so a
turn that is retried (a redelivered Celery task, a re-run test chat with the same turn id)
finds its events already written and does not count them twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.clock import day_key, month_key, utcnow
from core.errors import AlreadyExists
from core.ids import new_id
from core.logging import get_logger
from core.models.knowledge import UsageEvent
from core.storage.repositories.knowledge import UsageRepository

log = get_logger(__name__)


@dataclass(frozen=True)
class UsageContext:
    """Who a call is billed to and why. `idempotency_key` names this one call."""

    org_id: str
    purpose: str  # reply | test_chat | summary ...
    idempotency_key: str
    agent_id: str | None = None
    conversation_id: str | None = None


def llm_usage_key(turn_id: str, call_index: int) -> str:
    return f"llm:{turn_id}:{call_index}"


class UsageMeter:
    def __init__(self, usage: UsageRepository) -> None:
        self._usage = usage

    async def record_llm(self, ctx: UsageContext, *, model: str, prompt_tokens: int,
                         completion_tokens: int) -> bool:
        """Write the event; False when this key was already recorded (a retried turn)."""
        now = utcnow()
        event = UsageEvent(
            _id=new_id("use"), org_id=ctx.org_id, kind="llm", model=model,
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens, agent_id=ctx.agent_id,
            conversation_id=ctx.conversation_id, purpose=ctx.purpose,
            day=day_key(now), month=month_key(now), idempotency_key=ctx.idempotency_key,
        )
        try:
            await self._usage.record(ctx.org_id, event)
        except AlreadyExists:
            log.info("usage_already_recorded", key=ctx.idempotency_key)
            return False
        return True
