"""Inbound: one task per webhook event, one per conversation turn, plus the beat jobs that keep
the engine whole (recovery sweep, follow-ups).

acks_late + reject_on_worker_lost are safe on these tasks because they are idempotent: events
are claimed by id, turns are keyed by their last message and every side effect is journaled, so
a task redelivered after a worker died finishes the work instead of repeating it.
"""

from __future__ import annotations

from celery.utils.log import get_task_logger

from core.config import load_settings
from tasks.app import celery_app
from tasks.queue import CeleryTaskQueue
from tasks.retry import TRANSIENT, retry_or_fail
from tasks.runtime import run

logger = get_task_logger(__name__)
_queue = CeleryTaskQueue(celery_app)
MAX_RETRIES = load_settings().worker.max_retries


async def _engine(services):
    return await services.engine(_queue)


@celery_app.task(name="inbound.process_event", bind=True, acks_late=True, reject_on_worker_lost=True,
                 max_retries=MAX_RETRIES)
def process_event(self, org_id: str, event_id: str) -> str:
    try:
        return run(lambda s: _process_event(s, org_id, event_id))
    except TRANSIENT as exc:
        return retry_or_fail(self, exc, lambda: run(lambda s: _fail_event(s, org_id, event_id, str(exc))))


async def _process_event(services, org_id: str, event_id: str) -> str:
    return await (await _engine(services)).process_event(org_id, event_id)


async def _fail_event(services, org_id: str, event_id: str, error: str) -> None:
    await (await _engine(services)).fail_event(org_id, event_id, error)


@celery_app.task(name="inbound.run_turn", bind=True, acks_late=True, reject_on_worker_lost=True,
                 max_retries=MAX_RETRIES)
def run_turn(self, org_id: str, conversation_id: str, trigger_message_id: str | None = None) -> str:
    try:
        return run(lambda s: _run_turn(s, org_id, conversation_id, trigger_message_id))
    except TRANSIENT as exc:
        return retry_or_fail(self, exc, lambda: run(lambda s: _fail_turn(s, org_id, conversation_id, str(exc))))


async def _run_turn(services, org_id: str, conversation_id: str, trigger: str | None) -> str:
    return await (await _engine(services)).run_turn(org_id, conversation_id, trigger)


async def _fail_turn(services, org_id: str, conversation_id: str, error: str) -> None:
    await (await _engine(services)).fail_turn(org_id, conversation_id, error)


@celery_app.task(name="inbound.sweep")
def sweep() -> dict:
    stale = load_settings().worker.sweep_stale_s
    report = run(lambda s: _sweep(s, stale))
    return report.__dict__


async def _sweep(services, stale: float):
    return await (await _engine(services)).sweep(stale_after_s=stale)


@celery_app.task(name="inbound.follow_ups")
def follow_ups() -> int:
    return run(lambda s: _follow_ups(s))


async def _follow_ups(services) -> int:
    return await (await _engine(services)).follow_ups()
