"""Usage events: one per metered provider call (LLM or paid embedding), written once."""

from __future__ import annotations

from core.models.base import OrgDocument


class UsageEvent(OrgDocument):
    kind: str  # llm | embedding
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    agent_id: str | None = None
    conversation_id: str | None = None
    purpose: str = ""  # reply, test_chat, ingest, eval...
    day: str  # YYYY-MM-DD (UTC), see core/clock.py
    month: str
    idempotency_key: str | None = None
    cost_usd: float | None = None
