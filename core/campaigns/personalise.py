"""Optional LLM rewrite of a filled template, one call per lead, metered like every LLM call.

The rewrite is a courtesy, not a requirement: if the provider fails or answers with something
unusable, the lead gets the filled template (the report says how many were rewritten). The
usage key is derived from the campaign and lead, so a resumed campaign never pays twice (the
prepared text is stored on the target before sending anyway).
"""

from __future__ import annotations

import json
from typing import Any

from core.ai.errors import LLMError
from core.ai.llm import LLMClient
from core.errors import ConfigurationError
from core.logging import get_logger
from core.models.agent import Agent
from core.usage.metering import UsageContext

log = get_logger(__name__)
MAX_GROWTH = 2.0  # a rewrite more than twice as long as the original is not a rewrite

_SYSTEM = (
    "You are {persona} writing on behalf of a business. Tone: {tone}.\n"
    "Rewrite the operator's message below for one customer so it reads personal, using the "
    "customer facts only where natural. Keep the message's language, every fact, price, date, "
    "link and phone number exactly; add no offers, promises or claims; do not add placeholders "
    "or a signature. Answer with the message text only."
)


class Personaliser:
    def __init__(self, llm: LLMClient | None) -> None:
        self.llm = llm

    @property
    def enabled(self) -> bool:
        return self.llm is not None and self.llm.settings.enabled

    async def rewrite(self, org_id: str, agent: Agent, *, campaign_id: str, lead_id: int, text: str,
                      facts: dict[str, Any]) -> tuple[str, bool]:
        """(text, rewritten?) — falls back to `text` on any provider problem."""
        if not self.enabled:
            return text, False
        messages = [
            {"role": "system", "content": _SYSTEM.format(persona=agent.persona, tone=agent.tone)},
            {"role": "user", "content": f"MESSAGE:\n<<<\n{text}\n>>>\n\nCUSTOMER FACTS (JSON):\n"
                                        f"{json.dumps(facts, ensure_ascii=False, default=str)}"},
        ]
        usage = UsageContext(org_id=org_id, purpose="campaign", agent_id=agent.id,
                             idempotency_key=f"llm:campaign:{campaign_id}:{lead_id}")
        try:
            response = await self.llm.chat(messages, usage=usage, model=agent.model,  # type: ignore[union-attr]
                                           temperature=agent.temperature, max_tokens=800)
        except (LLMError, ConfigurationError) as exc:
            log.warning("campaign_rewrite_failed", org_id=org_id, campaign_id=campaign_id, lead_id=lead_id,
                        error=str(exc))
            return text, False
        out = (response.content or "").strip().strip("<>").strip()
        if not out or len(out) > max(200, len(text) * MAX_GROWTH) or "{" in out:
            return text, False
        return out, True
