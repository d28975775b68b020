"""Billing read model: invoice lines per organisation for a month (plan fee, included replies,
overage priced per reply beyond them), from the `usage_monthly` roll-ups and each org's plan.

An organisation is billed on the plan it has when the report runs (plans change rarely and the
console changes them at a period's start); amounts are integer nano-dollars like every cost.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from core.errors import InvalidInput
from core.usage.plans import PlanCatalog
from core.usage.repository import COUNTERS


def check_month(month: str) -> str:
    if not (isinstance(month, str) and len(month) == 7 and month[4] == "-" and month.replace("-", "").isdigit()
            and 1 <= int(month[5:]) <= 12):
        raise InvalidInput(f"a billing month must be YYYY-MM, got {month!r}")
    return month


class BillingReadModel:
    def __init__(self, db: AsyncDatabase, plans: PlanCatalog) -> None:
        self.monthly = db["usage_monthly"]
        self.orgs = db["organizations"]
        self.plans = plans

    async def month_usage(self, month: str, org_id: str | None = None) -> dict[str, dict[str, int]]:
        query: dict[str, Any] = {"month": check_month(month)}
        if org_id:
            query["org_id"] = org_id
        return {d["org_id"]: {c: int(d.get(c) or 0) for c in COUNTERS} async for d in self.monthly.find(query)}

    async def invoice_lines(self, month: str, org_id: str | None = None) -> list[dict[str, Any]]:
        usage = await self.month_usage(month, org_id)
        query = {"_id": org_id} if org_id else {}
        lines = []
        async for org in self.orgs.find(query, sort=[("_id", 1)]):
            plan = self.plans.of(org.get("plan"))
            used = usage.get(org["_id"], dict.fromkeys(COUNTERS, 0))
            included = min(used["replies"], plan.included_replies)
            overage = max(0, used["replies"] - plan.included_replies)
            base = {"org_id": org["_id"], "org_name": org.get("name", ""), "month": month, "plan": plan.name,
                    "llm_cost_nano": used["cost_nano"], "replies": used["replies"]}
            lines += [
                {**base, "line": "plan_fee", "quantity": 1, "unit_nano": plan.fee_nano, "amount_nano": plan.fee_nano},
                {**base, "line": "included_replies", "quantity": included, "unit_nano": 0, "amount_nano": 0},
                {**base, "line": "overage_replies", "quantity": overage, "unit_nano": plan.overage_per_reply_nano,
                 "amount_nano": overage * plan.overage_per_reply_nano},
            ]
        return lines
