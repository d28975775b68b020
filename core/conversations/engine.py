"""The conversation engine's entry points, one per Celery task."""

from __future__ import annotations

from core.conversations import followups, inbound, sweeper, turns
from core.conversations.context import EngineDeps
from core.conversations.errors import OrganisationBusy
from core.logging import get_logger
from core.models.events import EventStatus

log = get_logger(__name__)


async def park_event(deps: EngineDeps, org_id: str, event_id: str, kind: str, reason: str) -> None:
    log.warning("event parked", org_id=org_id, event_id=event_id, reason=reason[:300])
    await deps.storage.events.set_status(org_id, event_id, EventStatus.PARKED, reason[:500])
    await deps.storage.notifications.publish(org_id, "event_failed", dedupe_key=f"event:{event_id}",
                                             event_id=event_id, event_kind=kind, parked=True, error=reason[:300])


class ConversationEngine:
    def __init__(self, deps: EngineDeps) -> None:
        self.deps = deps

    async def process_event(self, org_id: str, event_id: str) -> str:
        event = await self.deps.storage.events.claim(org_id, event_id)
        if event is None:
            return "already_done"
        if event.attempts > self.deps.max_event_attempts:
            # Claimed again and again (a worker killed by it, an error every time): a poison
            # event is set aside instead of being retried forever.
            await park_event(self.deps, org_id, event.id, event.kind,
                             f"parked after {event.attempts - 1} attempts: {event.error or 'no outcome recorded'}")
            return "parked"
        try:
            return await inbound.handle_event(self.deps, org_id, event)
        except OrganisationBusy:
            await self.deps.storage.events.release_claim(org_id, event.id)
            raise
        except Exception as exc:
            await self.deps.storage.events.note_error(org_id, event.id, f"{type(exc).__name__}: {exc}")
            raise

    async def fail_event(self, org_id: str, event_id: str, error: str) -> None:
        await self.deps.storage.events.set_status(org_id, event_id, EventStatus.FAILED, error[:500])
        await self.deps.storage.notifications.publish(org_id, "event_failed", dedupe_key=f"event:{event_id}",
                                                      event_id=event_id, error=error[:300])

    async def run_turn(self, org_id: str, conversation_id: str, trigger_message_id: str | None) -> str:
        outcome = await turns.run_turn(self.deps, org_id, conversation_id, trigger_message_id)
        log.info("turn", org_id=org_id, conversation_id=conversation_id, outcome=outcome)
        return outcome

    async def fail_turn(self, org_id: str, conversation_id: str, error: str) -> None:
        await turns.fail_turn(self.deps, org_id, conversation_id, error)

    async def sweep(self, stale_after_s: float = 60.0) -> sweeper.SweepReport:
        return await sweeper.sweep(self.deps, stale_after_s=stale_after_s,
                                   max_attempts=self.deps.max_event_attempts)

    async def follow_ups(self) -> int:
        sent = 0
        for org_id in sorted({a.org_id for a in await self.deps.storage.kommo_accounts.all_accounts()}):
            sent += await followups.send_due_follow_ups(self.deps, org_id)
        return sent
