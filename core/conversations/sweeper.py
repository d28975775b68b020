"""Recovery sweep (beat): nothing accepted is ever dropped.

Tasks can vanish (a Redis restarted without persistence, a worker SIGKILLed before its task was
acknowledged and the broker's visibility timeout not yet over). Mongo is the source of truth:
events still pending and conversations with unanswered messages or an unfinished turn are
re-enqueued. Re-running is safe because every step is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from itertools import chain, zip_longest

from core.clock import aware
from core.conversations.context import EngineDeps
from core.locks import renewable_lock
from core.models.events import EventStatus

ACTIONABLE_STATUSES = (EventStatus.RECEIVED, EventStatus.QUEUED, EventStatus.PROCESSING)
# Old pending work may be lost (a Redis restart, a dead worker) or just queued behind a backlog.
# The sweep used to stop for every organisation while the broker held more than 20 tasks, so one
# flooded account stopped everyone's recovery. Now each organisation is swept on its own: a piece
# of work is re-enqueued at most once per five stale windows (a marker in Redis), which bounds the
# duplicates a backlog can cause, and at most `MAX_REQUEUE_PER_ORG` per sweep, round-robin, so a
# huge backlog of one account is recovered over several sweeps while the others' come first.
REQUEUE_EVERY_STALE = 5  # in stale windows: a re-enqueued task had five windows to start
MAX_REQUEUE_PER_ORG = 200
SWEEP_LOCK = "lock:inbound-sweep"


@dataclass
class LostWork:
    """What one organisation left behind, in the order it arrived."""

    events: list[tuple[str, str]] = field(default_factory=list)
    turns: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class SweepReport:
    events_requeued: int = 0
    events_failed: int = 0
    turns_requeued: int = 0
    recently_requeued: int = 0  # pending, but re-enqueued by a recent sweep (maybe still queued)
    deferred: int = 0  # past an organisation's share of this sweep: left for the next one
    skipped_busy: bool = False  # another sweep was still running


async def lost_work(deps: EngineDeps, org_id: str, *, stale_after_s: float, max_attempts: int,
                    report: SweepReport) -> LostWork:
    now = deps.clock()
    cutoff = now - timedelta(seconds=stale_after_s)
    found = LostWork()
    # One equality query per status: nx-27017 serves `status = x AND received_at <= t` from the
    # (status, received_at) index but scans the whole collection for `status IN (...)`.
    stale = []
    for status in ACTIONABLE_STATUSES:
        stale += await deps.storage.events.list(org_id, {"status": status, "received_at": {"$lte": cutoff}},
                                                sort=[("received_at", 1)], limit=1000)
    stale.sort(key=lambda e: e.received_at)
    for event in stale[:1000]:
        if event.claimed_at is not None and aware(event.claimed_at) > cutoff:
            # A worker claimed it within the window: its task is alive (e.g. retrying while an
            # uncertain reply becomes safe to check), not lost. Its own retries end it.
            continue
        if event.attempts >= max_attempts:
            await deps.storage.events.set_status(org_id, event.id, EventStatus.PARKED,
                                                 f"parked after {event.attempts} attempts: {event.error or 'no outcome'}"[:500])
            await deps.storage.notifications.publish(org_id, "event_failed", dedupe_key=f"event:{event.id}",
                                                     event_id=event.id, event_kind=event.kind, parked=True,
                                                     error=(event.error or "too many attempts")[:300])
            report.events_failed += 1
        else:
            found.events.append((org_id, event.id))
    conversations: set[str] = set()
    waiting = deps.storage.messages.collection.find(
        {"org_id": org_id, "role": "customer", "turn_id": None, "created_at": {"$lte": cutoff}},
        {"conversation_id": 1}, limit=2000)
    conversations.update([m["conversation_id"] async for m in waiting])
    # `$gt: ""` = set to a (turn id) string, like `$type: string`, but answerable from an index.
    unfinished = deps.storage.conversations.collection.find(
        {"org_id": org_id, "pending_turn_id": {"$gt": ""}, "last_customer_at": {"$lte": cutoff}}, {"_id": 1})
    conversations.update([c["_id"] async for c in unfinished])
    found.turns = [(org_id, conversation_id) for conversation_id in sorted(conversations)]
    return found


def interleave(per_org: list[list[tuple[str, str]]]) -> list[tuple[str, str]]:
    """Round-robin over organisations. Kommo paces each account (5 req/s), so work queued org
    after org would keep every worker waiting on one account's rate limit while the others
    idle: after a Redis restart that cut throughput to a third."""
    return [item for item in chain.from_iterable(zip_longest(*per_org)) if item is not None]


async def _not_recently_requeued(deps: EngineDeps, kind: str, work: list[tuple[str, str]],
                                  report: SweepReport, every_s: int) -> list[tuple[str, str]]:
    """Claim each piece of work's re-enqueue marker (SET NX): only the unclaimed ones go out, up
    to the organisation's share of this sweep."""
    if not work:
        return []
    fresh: list[tuple[str, str]] = []
    pipe = deps.redis.pipeline(transaction=False)
    for org_id, item_id in work[:MAX_REQUEUE_PER_ORG * 2]:
        pipe.set(f"sweep:{kind}:{org_id}:{item_id}", 1, nx=True, ex=every_s)
    for ref, claimed in zip(work, await pipe.execute(), strict=False):
        if not claimed:
            report.recently_requeued += 1
        elif len(fresh) < MAX_REQUEUE_PER_ORG:
            fresh.append(ref)
        else:  # over the share: give the marker back so the next sweep takes it
            await deps.redis.delete(f"sweep:{kind}:{ref[0]}:{ref[1]}")
            report.deferred += 1
    report.deferred += max(0, len(work) - MAX_REQUEUE_PER_ORG * 2)
    return fresh


async def sweep(deps: EngineDeps, *, stale_after_s: float = 60.0, max_attempts: int = 12) -> SweepReport:
    report = SweepReport()
    # One sweep at a time: a slow one (a big outage to recover) must not be joined by the next
    # beat's, which would find the same work and enqueue it twice.
    async with renewable_lock(deps.redis, SWEEP_LOCK, hold_s=30, wait_s=None) as acquired:
        if not acquired:
            report.skipped_busy = True
            return report
        org_ids = sorted({a.org_id for a in await deps.storage.kommo_accounts.all_accounts()})
        found = [await lost_work(deps, org_id, stale_after_s=stale_after_s, max_attempts=max_attempts,
                                 report=report) for org_id in org_ids]
        every = max(60, int(stale_after_s * REQUEUE_EVERY_STALE))
        events = interleave([await _not_recently_requeued(deps, "event", f.events, report, every) for f in found])
        turns = interleave([await _not_recently_requeued(deps, "turn", f.turns, report, every) for f in found])
        await deps.queue.process_events(events)
        await deps.queue.schedule_turns(turns)
        report.events_requeued, report.turns_requeued = len(events), len(turns)
    return report
