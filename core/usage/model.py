"""Usage events: one per metered provider call (LLM or paid embedding) and one per turn the
engine finished (a reply sent, a handoff), written once."""

from __future__ import annotations

from core.models.base import OrgDocument


class UsageEvent(OrgDocument):
    kind: str  # llm | embedding | turn
    model: str = ""
    provider: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    tokens_estimated: bool = False  # the API gave no usage: counted with the offline tokenizer
    latency_ms: int = 0
    agent_id: str | None = None
    conversation_id: str | None = None
    lead_id: int | None = None
    lead_key: str = ""  # turn events: "org|agent|lead", so one $group finds every agent's distinct leads
    purpose: str = ""  # reply, test_chat, ingest, summary, query_translation, campaign...
    day: str  # YYYY-MM-DD (UTC), see core/clock.py
    month: str
    idempotency_key: str | None = None
    cost_nano: int = 0  # priced from the table in force on `day` (core/usage/pricing.py)
    price_known: bool = True  # False: the model is not in the table, priced by the default
    provider_cost_nano: int | None = None  # what the provider said the call cost (OpenRouter usage.cost)
    replies: int = 0  # turn events: 1 when a reply reached the customer
    handoffs: int = 0  # turn events: 1 when the turn handed the conversation to humans
