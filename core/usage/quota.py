"""Quota checks before a reply. Plans arrive with the usage & billing issue; until then the
policy allows everything, behind the interface the conversation engine already calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class QuotaDecision:
    allowed: bool
    reason: str | None = None


class QuotaPolicy(Protocol):
    async def check_reply(self, org_id: str, agent_id: str) -> QuotaDecision: ...


class UnlimitedQuota:
    """No plans yet: every reply is allowed."""

    async def check_reply(self, org_id: str, agent_id: str) -> QuotaDecision:
        return QuotaDecision(allowed=True)
