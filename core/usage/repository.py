"""`usage_events` (the metered calls and finished turns of an organisation, see
core/usage/model.py) and their roll-ups: `usage_daily` per org, day, agent, model and purpose,
and `usage_monthly` per org and month (what the quota reads before each reply).

Each event carries its own counters (`calls`, `replies`, `cost_nano`...) and its roll-up key, so
the roll-ups are `$inc` of those fields on write and a reconcile is a `$group` by one stored field
with `$sum` of field paths: the constructs the embedded server computes right (no compound `_id`,
no datetime `$match`, no `$cond`; see ../shared/notes/verified-stack.md).
"""

from __future__ import annotations

from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from core.errors import AlreadyExists, InvalidInput
from core.storage.codec import CodecCollection
from core.storage.repositories.base import OrgScopedRepository, scope
from core.usage.model import UsageEvent

# The counters every event carries and every roll-up sums.
COUNTERS = ("events", "calls", "turns", "replies", "handoffs", "prompt_tokens", "completion_tokens", "total_tokens",
            "cost_nano", "provider_calls", "provider_nano", "provider_priced_nano", "unknown_price_calls",
            "estimated_calls", "latency_ms")


def event_counters(event: UsageEvent) -> dict[str, int]:
    metered = event.kind in ("llm", "embedding")
    has_provider = event.provider_cost_nano is not None
    return {
        "events": 1, "calls": int(metered), "turns": int(event.kind == "turn"), "replies": event.replies,
        "handoffs": event.handoffs, "prompt_tokens": event.prompt_tokens, "completion_tokens": event.completion_tokens,
        "total_tokens": event.total_tokens, "cost_nano": event.cost_nano, "provider_calls": int(has_provider),
        "provider_nano": event.provider_cost_nano or 0,
        # Our price of the calls the provider priced too: the two figures drift is measured between.
        "provider_priced_nano": event.cost_nano if has_provider else 0,
        "unknown_price_calls": int(metered and not event.price_known),
        "estimated_calls": int(event.tokens_estimated), "latency_ms": event.latency_ms,
    }


def daily_key(event: UsageEvent) -> str:
    return "|".join([event.org_id, event.day, event.agent_id or "", event.model or "", event.purpose or ""])


def org_day(org_id: str, day: str) -> str:
    """One string field for "this org, these days": a string range over it is selective through a
    single-field index, the only kind the embedded server plans queries with."""
    return f"{org_id}|{day}"


def monthly_key(org_id: str, month: str) -> str:
    return f"{org_id}|{month}"


class UsageRepository(OrgScopedRepository[UsageEvent]):
    collection_name = "usage_events"
    model = UsageEvent

    def __init__(self, db: AsyncDatabase) -> None:
        super().__init__(db)
        self.daily = CodecCollection(db["usage_daily"])
        self.monthly = CodecCollection(db["usage_monthly"])

    async def record(self, org_id: str, event: UsageEvent) -> None:
        """Insert the event (AlreadyExists when its idempotency key is taken), then add it to
        the roll-ups. A crash between the two leaves the roll-ups short until the reconcile."""
        counters = event_counters(event)
        doc = {**event.to_mongo(), **counters, "rollup_key": daily_key(event), "org_day": org_day(org_id, event.day)}
        if doc["org_id"] != org_id:
            raise InvalidInput("document belongs to another organisation")
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError as exc:
            raise AlreadyExists("usage_events: duplicate key", detail=str(exc)) from None
        await self._add(self.daily, daily_key(event), counters, {
            "org_id": org_id, "day": event.day, "org_day": org_day(org_id, event.day), "month": event.month,
            "agent_id": event.agent_id or "",
            "model": event.model or "", "purpose": event.purpose or ""})
        await self._add(self.monthly, monthly_key(org_id, event.month), counters,
                        {"org_id": org_id, "month": event.month})

    @staticmethod
    async def _add(collection: CodecCollection, key: str, counters: dict[str, int], identity: dict[str, Any]) -> None:
        update = {"$inc": counters, "$setOnInsert": identity}
        try:
            await collection.update_one({"_id": key}, update, upsert=True)
        except DuplicateKeyError:
            # Two first writers of one roll-up: the loser's upsert collides; the document exists now.
            await collection.update_one({"_id": key}, update, upsert=True)

    async def month_totals(self, org_id: str, month: str) -> dict[str, int]:
        doc = await self.monthly.find_one(scope(org_id, {"_id": monthly_key(org_id, month)})) or {}
        return {c: int(doc.get(c) or 0) for c in COUNTERS}

    # --- reconcile -------------------------------------------------------------------------

    async def _sums(self, match: dict[str, Any], group_by: str) -> dict[str, dict[str, int]]:
        pipeline = [{"$match": match},
                    {"$group": {"_id": f"${group_by}", **{c: {"$sum": f"${c}"} for c in COUNTERS}}}]
        rows = await (await self.collection.aggregate(pipeline)).to_list()
        return {row["_id"]: {c: int(row.get(c) or 0) for c in COUNTERS} for row in rows if row["_id"]}

    async def reconcile_day(self, org_id: str, day: str) -> int:
        """Make the day's roll-ups equal its events (a closed day: no writer adds to it any more).
        Returns how many roll-up documents changed. The month's document gets the same
        corrections as `$inc`, so increments landing meanwhile for today are kept."""
        truth = await self._sums(scope(org_id, {"org_day": org_day(org_id, day)}), "rollup_key")
        stored = {d["_id"]: d async for d in self.daily.find(scope(org_id, {"org_day": org_day(org_id, day)}))}
        ops, month_delta, changed = [], dict.fromkeys(COUNTERS, 0), 0
        for key in set(truth) | set(stored):
            want = truth.get(key, dict.fromkeys(COUNTERS, 0))
            have = {c: int((stored.get(key) or {}).get(c) or 0) for c in COUNTERS}
            delta = {c: want[c] - have[c] for c in COUNTERS}
            if not any(delta.values()):
                continue
            changed += 1
            for c in COUNTERS:
                month_delta[c] += delta[c]
            if key not in truth:
                ops.append(UpdateOne({"_id": key}, {"$set": want}))
                continue
            org, d, agent, model, purpose = key.split("|", 4)
            ops.append(UpdateOne({"_id": key}, {"$set": want, "$setOnInsert": {
                "org_id": org, "day": d, "org_day": org_day(org, d), "month": d[:7], "agent_id": agent, "model": model,
                "purpose": purpose}},
                upsert=True))
        if ops:
            await self.daily.bulk_write(ops, ordered=False)
        if any(month_delta.values()):
            await self.monthly.update_one({"_id": monthly_key(org_id, day[:7])}, {
                "$inc": month_delta, "$setOnInsert": {"org_id": org_id, "month": day[:7]}}, upsert=True)
        return changed

    async def reconcile_month(self, org_id: str, month: str) -> bool:
        """A closed month: its document set to the sum of its events. True when it changed."""
        truth = (await self._sums(scope(org_id, {"month": month}), "org_id")).get(org_id, dict.fromkeys(COUNTERS, 0))
        if await self.month_totals(org_id, month) == truth:
            return False
        await self.monthly.update_one({"_id": monthly_key(org_id, month)},
                                      {"$set": {**truth, "org_id": org_id, "month": month}}, upsert=True)
        return True

    async def orgs_with_usage(self, day_from: str, day_to: str) -> list[str]:
        """Organisations with roll-ups in the day range (the reconcile's work list)."""
        found = await self.daily.distinct("org_id", {"day": {"$gte": day_from, "$lte": day_to}})
        return sorted(str(o) for o in found if o)
