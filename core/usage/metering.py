"""Usage metering: one UsageEvent per provider call (LLM or paid embedding), written once per key.

The idempotency key names the call, not the attempt: an LLM call is keyed by its turn id and
ordinal within the turn, a translation by its turn, an embedding batch by its texts. A turn
that is retried (a redelivered Celery task, a re-run test chat with the same turn id) or a
batch embedded again by a redelivered ingestion finds its events already written and is not
counted twice. `TurnUsage` is the per-turn sum the engine and the test chat show.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from core.clock import day_key, month_key, utcnow
from core.errors import AlreadyExists
from core.ids import new_id
from core.logging import get_logger
from core.usage.model import UsageEvent
from core.usage.pricing import PriceTable, usd_to_nano
from core.usage.repository import UsageRepository

log = get_logger(__name__)


@dataclass(frozen=True)
class UsageContext:
    """Who a call is billed to and why. `idempotency_key` names this one call."""

    org_id: str
    purpose: str  # reply | test_chat | summary | query_translation | campaign | ingest | query
    idempotency_key: str
    agent_id: str | None = None
    conversation_id: str | None = None
    lead_id: int | None = None


def llm_usage_key(turn_id: str, call_index: int) -> str:
    return f"llm:{turn_id}:{call_index}"


def translation_usage(org_id: str, agent_id: str, *, turn_id: str | None = None,
                      conversation_id: str | None = None, purpose: str = "query_translation") -> UsageContext:
    """Usage context of the translation made while answering `turn_id` (one per turn: a retried
    turn is not billed twice); without a turn (CLI, evaluation) a fresh key."""
    key = f"llm:{turn_id}:query" if turn_id else f"llm:{new_id('qt')}:query"
    return UsageContext(org_id=org_id, purpose=purpose, idempotency_key=key, agent_id=agent_id,
                        conversation_id=conversation_id)


def embedding_usage_key(model: str, purpose: str, texts: list[str], call_key: str | None = None) -> str:
    """A query is keyed by the turn that asked it (`call_key`) or is fresh; a passage batch by
    its content, so a redelivered ingestion that embeds the same batch again is counted once."""
    if call_key:
        return f"emb:{call_key}"
    if purpose == "query":
        return f"emb:{new_id('q')}"
    digest = hashlib.sha256("\x00".join([model, *texts]).encode()).hexdigest()[:32]
    return f"emb:{purpose}:{digest}"


@dataclass
class TurnUsage:
    """What one turn spent, summed over its LLM calls."""

    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0

    def add(self, model: str, prompt: int, completion: int) -> None:
        self.model = model or self.model
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.calls += 1


class UsageMeter:
    """Writes usage events, priced on write; injected into the LLM client, the embedder and the
    engine (finished turns)."""

    def __init__(self, usage: UsageRepository, prices: PriceTable | None = None, *, provider: str = "",
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._usage = usage
        self.prices = prices
        self.provider = provider
        self._clock = clock

    async def record_llm(self, ctx: UsageContext, *, model: str, prompt_tokens: int, completion_tokens: int,
                         tokens_estimated: bool = False, latency_ms: int = 0,
                         provider_cost_usd: object = None) -> bool:
        """Write the event; False when this key was already recorded (a retried turn).
        `tokens_estimated`: the API gave no usage and the caller counted the texts offline."""
        provider_nano = usd_to_nano(provider_cost_usd) if _is_cost(provider_cost_usd) else None
        return await self._record(ctx, kind="llm", model=model, prompt_tokens=prompt_tokens,
                                  completion_tokens=completion_tokens, estimated=tokens_estimated,
                                  latency_ms=latency_ms, provider_cost_nano=provider_nano)

    async def record_embedding(self, ctx: UsageContext, *, model: str, prompt_tokens: int,
                               latency_ms: int = 0) -> bool:
        """Write an embedding call's event; False when this key was already recorded."""
        return await self._record(ctx, kind="embedding", model=model, prompt_tokens=prompt_tokens,
                                  completion_tokens=0, latency_ms=latency_ms)

    async def record_turn(self, ctx: UsageContext, *, replied: bool, handoff: bool) -> bool:
        """A finished turn: the reply sent (what plans count) and the handoff; once per turn."""
        return await self._record(ctx, kind="turn", model="", prompt_tokens=0, completion_tokens=0,
                                  replies=int(replied), handoffs=int(handoff))

    async def _record(self, ctx: UsageContext, *, kind: str, model: str, prompt_tokens: int, completion_tokens: int,
                      estimated: bool = False, latency_ms: int = 0, provider_cost_nano: int | None = None,
                      replies: int = 0, handoffs: int = 0) -> bool:
        now = self._clock()
        day = day_key(now)
        cost, known = (0, True)
        if kind != "turn" and self.prices is not None:
            cost, known = self.prices.cost_nano(model, day, prompt_tokens, completion_tokens)
        event = UsageEvent(
            _id=new_id("use"), org_id=ctx.org_id, kind=kind, model=model,
            provider=self.provider if kind == "llm" else "", created_at=now,
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens, tokens_estimated=estimated, latency_ms=max(0, latency_ms),
            agent_id=ctx.agent_id, conversation_id=ctx.conversation_id, lead_id=ctx.lead_id, purpose=ctx.purpose,
            day=day, month=month_key(now), idempotency_key=ctx.idempotency_key, cost_nano=cost, price_known=known,
            provider_cost_nano=provider_cost_nano, replies=replies, handoffs=handoffs,
            lead_key=f"{ctx.org_id}|{ctx.agent_id}|{ctx.lead_id}" if kind == "turn" and ctx.agent_id and ctx.lead_id
            else "",
        )
        try:
            await self._usage.record(ctx.org_id, event)
        except AlreadyExists:
            log.info("usage_already_recorded", key=ctx.idempotency_key)
            return False
        return True


def _is_cost(value: object) -> bool:
    # Provider output is untrusted: only a finite non-negative number is a cost.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
