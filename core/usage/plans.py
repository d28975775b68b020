"""Plans: monthly limits (replies, tokens, spend, agents, knowledge size), the fee, the replies
included in it and the price of each reply beyond them, read from a data file.

A limit stops the agent at 100% (quota); the included replies only decide the invoice, so a plan
whose reply limit is above its included replies bills the difference as overage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from core.errors import InvalidInput, NotFound
from core.usage.pricing import usd_to_nano

SHIPPED_PLANS = Path(__file__).with_name("data") / "plans.json"
LIMIT_KEYS = ("replies", "tokens", "spend_usd", "agents", "knowledge_mb")


class PlanLimitReached(InvalidInput):
    """Creating this would go beyond the organisation's plan (agents, knowledge size)."""

    code = "plan_limit"


@dataclass(frozen=True)
class Plan:
    name: str
    title: str
    fee_nano: int
    replies: int | None  # None: unlimited
    tokens: int | None
    spend_nano: int | None
    agents: int | None
    knowledge_mb: int | None
    included_replies: int
    overage_per_reply_nano: int

    def limits(self) -> dict[str, int]:
        """The monthly limits the quota meters (agents and knowledge are checked where created)."""
        found = {"replies": self.replies, "tokens": self.tokens, "spend_nano": self.spend_nano}
        return {k: v for k, v in found.items() if v is not None}


def _num(value: object, what: str, plan: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise InvalidInput(f"plan {plan}: {what} {value!r} is not a number") from None
    if number < 0 or not number.is_finite():
        raise InvalidInput(f"plan {plan}: {what} must be a non-negative number")
    return number


def _limit(limits: dict, key: str, plan: str) -> int | None:
    value = limits.get(key)
    if value is None:
        return None
    number = _num(value, f"limit {key}", plan)
    return usd_to_nano(number) if key == "spend_usd" else int(number)


class PlanCatalog:
    def __init__(self, plans: dict[str, Plan]) -> None:
        self._plans = plans

    @classmethod
    def from_file(cls, path: Path) -> PlanCatalog:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InvalidInput(f"plans file {path} cannot be read: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise InvalidInput(f"plans file {path} is not valid JSON: {exc}") from None
        if not isinstance(raw, dict) or not raw:
            raise InvalidInput(f"plans file {path} must be an object of plans")
        plans = {}
        for name, spec in raw.items():
            if not isinstance(spec, dict) or not isinstance(spec.get("limits", {}), dict):
                raise InvalidInput(f"plan {name}: must be an object with a limits object")
            limits = spec.get("limits", {})
            unknown = set(limits) - set(LIMIT_KEYS)
            if unknown:
                raise InvalidInput(f"plan {name}: unknown limits {', '.join(sorted(unknown))}")
            plans[name] = Plan(
                name=name, title=str(spec.get("title") or name),
                fee_nano=usd_to_nano(_num(spec.get("fee_usd", 0), "fee_usd", name)),
                replies=_limit(limits, "replies", name), tokens=_limit(limits, "tokens", name),
                spend_nano=_limit(limits, "spend_usd", name), agents=_limit(limits, "agents", name),
                knowledge_mb=_limit(limits, "knowledge_mb", name),
                included_replies=int(_num(spec.get("included_replies", 0), "included_replies", name)),
                overage_per_reply_nano=usd_to_nano(_num(spec.get("overage_per_reply_usd", 0),
                                                        "overage_per_reply_usd", name)),
            )
        return cls(plans)

    def names(self) -> list[str]:
        return list(self._plans)

    def of(self, plan_name: str | None) -> Plan:
        """The organisation's plan; an unknown name (a plan removed from the file) counts as the first plan."""
        return self._plans.get(plan_name or "") or next(iter(self._plans.values()))

    def get(self, name: str) -> Plan:
        plan = self._plans.get(name)
        if plan is None:
            raise NotFound(f"no plan {name!r}; plans: {', '.join(self._plans)}", plan=name)
        return plan
