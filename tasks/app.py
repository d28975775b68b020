"""The one Celery app: Redis broker and result backend, queues and routes.

Tasks live in `tasks/<area>.py`, take ids, and call one core service through `tasks.runtime`.
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

from core.config import Settings, load_settings
from core.services import effective_redis_url

QUEUES = ("inbound", "kommo", "ingest", "reports")
TASK_MODULES = ("tasks.inbound", "tasks.kommo", "tasks.ingest", "tasks.campaigns")


def create_celery(broker_url: str | None = None) -> Celery:
    # The launcher exports the effective REDIS_URL (embedded or external) to every child.
    settings = load_settings()
    url = broker_url or effective_redis_url(settings)
    worker = settings.worker
    # Every countdown we schedule (debounce, retry backoff) stays below the visibility timeout,
    # or Redis would redeliver a task that is merely waiting (Celery's Redis caveat).
    longest_countdown = max(worker.max_retry_countdown_s, worker.debounce_s)
    visibility = max(worker.visibility_timeout_s, int(longest_countdown) + 30)
    app = Celery("kommo_agent", broker=url, backend=url, include=list(TASK_MODULES))
    app.conf.update(
        task_queues=[Queue(q) for q in QUEUES],
        task_default_queue="inbound",
        task_routes={
            "inbound.*": {"queue": "inbound"},
            "kommo.*": {"queue": "kommo"},
            "ingest.*": {"queue": "ingest"},
            "reports.*": {"queue": "reports"},
        },
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_expires=3600,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        task_acks_late=False,  # opt-in per idempotent task only
        task_soft_time_limit=300,
        task_time_limit=360,
        broker_transport_options={"visibility_timeout": visibility},
        result_backend_transport_options={"visibility_timeout": visibility},
        beat_schedule=beat_schedule(settings),
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        enable_utc=True,
    )
    return app



def beat_schedule(settings: Settings) -> dict:
    w = settings.worker
    return {
        # A sweep stuck behind a backlog is useless by the time it runs (the next one is due):
        # let it expire instead of piling up in the queue.
        "recovery-sweep": {"task": "inbound.sweep", "schedule": w.sweep_interval_s,
                           "options": {"expires": w.sweep_interval_s}},
        "follow-ups": {"task": "inbound.follow_ups", "schedule": w.follow_up_interval_s},
        "kommo-token-refresh": {"task": "kommo.refresh_tokens", "schedule": w.token_refresh_interval_s},
        "kommo-periodic-sync": {"task": "kommo.sync_all", "schedule": w.kommo_sync_interval_s},
        "campaigns-resume": {"task": "kommo.resume_campaigns", "schedule": 60.0},
    }


celery_app = create_celery(os.environ.get("CELERY_BROKER_URL"))
