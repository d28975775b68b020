"""Quota checks before a reply: the org's plan limits against this month's usage roll-up.

At `warn_ratio` (80%) of any limit the owners and admins get one notice per month and limit, at
100% one more, and the reply is refused (the engine hands the conversation to humans). "Once"
holds with many workers: each notice is claimed by inserting a document whose `_id` names the
org, month, limit and threshold, and only the worker whose insert succeeds publishes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pymongo.errors import DuplicateKeyError

from core.clock import month_key, utcnow
from core.errors import KommoAgentError, NotFound
from core.logging import get_logger
from core.storage import Storage
from core.usage.plans import PlanCatalog, PlanLimitReached
from core.usage.repository import UsageRepository

log = get_logger(__name__)
# The roll-up counter each plan limit is measured by.
LIMIT_COUNTERS = {"replies": "replies", "tokens": "total_tokens", "spend_nano": "cost_nano"}


class QuotaExceeded(KommoAgentError):
    """The plan's monthly limit is used up: the agent does not answer until the next period."""

    code = "quota_exceeded"


@dataclass(frozen=True)
class QuotaDecision:
    allowed: bool
    reason: str | None = None
    usage: dict[str, float] = field(default_factory=dict)  # limit -> share used (1.0 = 100%)


class QuotaPolicy(Protocol):
    async def check_reply(self, org_id: str, agent_id: str) -> QuotaDecision: ...


class UnlimitedQuota:
    """No plan enforcement (tools, tests of other areas): every reply is allowed."""

    async def check_reply(self, org_id: str, agent_id: str) -> QuotaDecision:
        return QuotaDecision(allowed=True)


class PlanQuota:
    """The org's plan (`Organization.plan`) against its month in `usage_monthly`."""

    def __init__(self, storage: Storage, usage: UsageRepository, plans: PlanCatalog, *, warn_ratio: float = 0.8,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.storage = storage
        self.usage = usage
        self.plans = plans
        self.warn_ratio = warn_ratio
        self.clock = clock
        self.claims = storage.db["quota_notices"]

    async def shares(self, org_id: str, month: str | None = None) -> dict[str, float]:
        """How much of each monthly limit the org used (1.0 = the whole limit)."""
        org = await self.storage.orgs.get(org_id)
        if org is None:
            return {}
        plan = self.plans.of(org.plan)
        totals = await self.usage.month_totals(org_id, month or month_key(self.clock()))
        found = {}
        for limit, cap in plan.limits().items():
            used = totals[LIMIT_COUNTERS[limit]]
            found[limit] = used / cap if cap > 0 else 1.0  # a zero limit allows nothing
        return found

    async def check_reply(self, org_id: str, agent_id: str) -> QuotaDecision:
        month = month_key(self.clock())
        shares = await self.shares(org_id, month)
        if not shares:
            return QuotaDecision(allowed=True)
        over = sorted(k for k, v in shares.items() if v >= 1.0)
        for limit, share in shares.items():
            if share >= 1.0:
                await self._notice(org_id, month, limit, 100, agent_id, share)
            elif share >= self.warn_ratio:
                await self._notice(org_id, month, limit, round(self.warn_ratio * 100), agent_id, share)
        if over:
            return QuotaDecision(allowed=False, reason=f"plan_limit:{','.join(over)}", usage=shares)
        return QuotaDecision(allowed=True, usage=shares)

    async def _notice(self, org_id: str, month: str, limit: str, percent: int, agent_id: str, share: float) -> None:
        claim = f"{org_id}|{month}|{limit}|{percent}"
        try:
            await self.claims.insert_one({"_id": claim, "org_id": org_id, "month": month, "limit": limit,
                                          "percent": percent, "at": utcnow().isoformat()})
        except DuplicateKeyError:
            return  # another worker (or an earlier turn) already told them this month
        kind = "quota_exceeded" if percent >= 100 else "quota_warning"
        await self.storage.notifications.publish(org_id, kind, dedupe_key=f"quota:{month}:{limit}:{percent}",
                                                 limit=limit, percent=percent, used_percent=round(share * 100),
                                                 month=month, agent_id=agent_id)
        log.info("quota_notice", org_id=org_id, month=month, limit=limit, percent=percent)


async def set_org_plan(storage: Storage, plans: PlanCatalog, org_id: str, name: str) -> str:
    """Put the organisation on plan `name` from now on; returns the previous plan."""
    plan = plans.get(name)  # NotFound names the plans there are
    org = await storage.orgs.get(org_id)
    if org is None:
        raise NotFound(f"organisation {org_id} not found", org_id=org_id)
    await storage.orgs.update(org_id, {"plan": plan.name, "plan_since": utcnow()})
    log.info("org_plan_set", org_id=org_id, plan=plan.name, previous=org.plan)
    return org.plan


def knowledge_room(storage: Storage, plans: PlanCatalog):
    """A check for the knowledge intake: refuses `size` more bytes of sources when the org's plan
    has no room for them (PlanLimitReached names the plan and its size)."""

    async def check(org_id: str, size: int) -> None:
        org = await storage.orgs.get(org_id)
        plan = plans.of(org.plan if org else None)
        if plan.knowledge_mb is None:
            return
        pipeline = [{"$match": {"org_id": org_id}}, {"$group": {"_id": "$org_id", "b": {"$sum": "$size_bytes"}}}]
        rows = await (await storage.knowledge.collection.aggregate(pipeline)).to_list()
        used = int(rows[0]["b"]) if rows else 0
        if used + size > plan.knowledge_mb * 1024 * 1024:
            raise PlanLimitReached(f"the {plan.title} plan holds {plan.knowledge_mb} MB of knowledge; "
                                   f"{used / 1048576:.1f} MB are used and this adds {size / 1048576:.1f} MB",
                                   limit=plan.knowledge_mb, plan=plan.title)

    return check
