"""The one Celery app: Redis broker and result backend, queues and explicit routes.

Tasks live in `tasks/<area>.py`, are named `<area>.<verb>`, derive from `tasks.base.CoreTask`,
take ids, and call one core service. Settings are read once, when the app is created.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from core.config import Settings, load_settings
from core.services import effective_redis_url
from tasks.routing import QUEUES, ROUTES

TASK_MODULES = ("tasks.inbound", "tasks.kommo", "tasks.ingest", "tasks.ask", "tasks.campaigns")


def create_celery(broker_url: str | None = None, settings: Settings | None = None) -> Celery:
    """The app; its configuration (settings, hence the environment) is read lazily, once, when
    Celery first needs it, so importing a task module reads nothing."""
    app = Celery("kommo_agent", include=list(TASK_MODULES))
    app.add_defaults(lambda: celery_config(settings or load_settings(), broker_url))
    return app


def celery_config(settings: Settings, broker_url: str | None = None) -> dict:
    url = broker_url or effective_redis_url(settings)
    worker = settings.worker
    # Every countdown we schedule (debounce, retry backoff) stays below the visibility timeout,
    # or Redis would redeliver a task that is merely waiting (Celery's Redis caveat).
    longest_countdown = max(worker.max_retry_countdown_s, worker.debounce_s)
    visibility = max(worker.visibility_timeout_s, int(longest_countdown) + 30)
    # Ingestion ends before the broker would hand its message to another worker (prefork
    # enforces these; the thread pool cannot, and the source's lease covers that case).
    ingest_limit = max(60, visibility - 60)
    return dict(
        broker_url=url,
        result_backend=url,
        task_queues=[Queue(q) for q in QUEUES],
        task_default_queue="inbound",
        task_routes=ROUTES,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_expires=3600,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        task_acks_late=False,  # opt-in per idempotent task only
        task_soft_time_limit=300,
        task_time_limit=360,
        task_annotations={"ingest.index_source": {"soft_time_limit": ingest_limit - 30, "time_limit": ingest_limit}},
        broker_transport_options={"visibility_timeout": visibility},
        result_backend_transport_options={"visibility_timeout": visibility},
        beat_schedule=beat_schedule(settings),
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        enable_utc=True,
    )


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
        "ingest-sweep": {"task": "ingest.sweep", "schedule": w.sweep_interval_s,
                         "options": {"expires": w.sweep_interval_s}},
        "campaigns-resume": {"task": "campaigns.resume_stalled", "schedule": 60.0},
    }


# The launcher exports the effective REDIS_URL (embedded or external) to every child; the
# configuration is read from it on first use.
celery_app = create_celery()
