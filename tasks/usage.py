"""Usage tasks (queue `reports`): the nightly reconcile of the roll-ups with the events."""

from __future__ import annotations

from core.clock import utcnow
from core.usage.reconcile import reconcile_closed_days
from tasks.app import celery_app
from tasks.base import CoreTask


@celery_app.task(name="usage.reconcile", base=CoreTask, bind=True, acks_late=True)
def reconcile(self: CoreTask) -> dict:
    # Idempotent (it sets the roll-ups to the events' sums), so a redelivery is harmless.
    return self.core(lambda s: reconcile_closed_days(s.usage, utcnow(), s.settings.usage.reconcile_days))
