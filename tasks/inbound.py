"""Inbound: one task per webhook event, one per conversation turn, plus the beat jobs that keep
the engine whole (recovery sweep, follow-ups).

acks_late + reject_on_worker_lost are safe on these tasks because they are idempotent: events
are claimed by id, turns are keyed by their last message and every side effect is journaled, so
a task redelivered after a worker died finishes the work instead of repeating it.
"""

from __future__ import annotations

from celery.utils.log import get_task_logger

from tasks.app import celery_app
from tasks.base import CoreTask
from tasks.retry import TRANSIENT

logger = get_task_logger(__name__)


@celery_app.task(name="inbound.process_event", base=CoreTask, bind=True, acks_late=True,
                 reject_on_worker_lost=True)
def process_event(self: CoreTask, org_id: str, event_id: str) -> str:
    try:
        return self.core(lambda s: _engine_call(s, "process_event", org_id, event_id))
    except TRANSIENT as exc:
        error = str(exc)
        return self.retry_or_fail(exc, lambda s: _engine_call(s, "fail_event", org_id, event_id, error))


@celery_app.task(name="inbound.run_turn", base=CoreTask, bind=True, acks_late=True, reject_on_worker_lost=True)
def run_turn(self: CoreTask, org_id: str, conversation_id: str, trigger_message_id: str | None = None) -> str:
    try:
        return self.core(lambda s: _engine_call(s, "run_turn", org_id, conversation_id, trigger_message_id))
    except TRANSIENT as exc:
        error = str(exc)
        return self.retry_or_fail(exc, lambda s: _engine_call(s, "fail_turn", org_id, conversation_id, error))


@celery_app.task(name="inbound.sweep", base=CoreTask, bind=True)
def sweep(self: CoreTask) -> dict:
    stale = self.settings.worker.sweep_stale_s
    return self.core(lambda s: _engine_call(s, "sweep", stale_after_s=stale)).__dict__


@celery_app.task(name="inbound.follow_ups", base=CoreTask, bind=True)
def follow_ups(self: CoreTask) -> int:
    return self.core(lambda s: _engine_call(s, "follow_ups"))


async def _engine_call(services, method: str, *args, **kwargs):
    return await getattr(await services.engine(), method)(*args, **kwargs)


@celery_app.task(name="inbound.approval", base=CoreTask, bind=True, acks_late=True, reject_on_worker_lost=True)
def approval(self: CoreTask, org_id: str, card_id: str) -> str:
    """An approver's claimed Send / Edit / Reject, carried out (journaled: a redelivery is harmless)."""
    try:
        return self.core(lambda s: _approval_call(s, "execute", org_id, card_id))
    except TRANSIENT as exc:
        error = str(exc)
        return self.retry_or_fail(exc, lambda s: _approval_fail(s, org_id, card_id, error))


@celery_app.task(name="inbound.approvals_expire", base=CoreTask, bind=True)
def approvals_expire(self: CoreTask) -> int:
    return self.core(lambda s: _approval_call(s, "expire_due"))


async def _approval_call(services, method: str, *args):
    engine = await services.engine()
    return await getattr(services.approvals(), method)(engine.deps, *args)


async def _approval_fail(services, org_id: str, card_id: str, error: str) -> None:
    approvals = services.approvals()
    await approvals.end(org_id, card_id, ("sending", "rejecting"), "failed", error=error)
