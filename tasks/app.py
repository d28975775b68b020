"""The one Celery app: Redis broker and result backend, queues and routes.

Tasks live in `tasks/<area>.py`, take ids, and call one core service through `tasks.runtime`.
"""

from __future__ import annotations

import importlib.util
import os

from celery import Celery
from kombu import Queue

QUEUES = ("inbound", "kommo", "ingest", "reports")
TASK_MODULES = ("tasks.inbound", "tasks.kommo", "tasks.ingest", "tasks.maintenance")

# Longest countdown we ever schedule (debounce, retry backoff cap) must stay below this, or
# Redis redelivers a task that is merely waiting (Celery's Redis visibility-timeout caveat).
VISIBILITY_TIMEOUT_S = 3600


def _broker_url() -> str:
    # The launcher exports the effective REDIS_URL (embedded or external) to every child.
    from core.config import load_settings  # noqa: PLC0415

    settings = load_settings()
    return settings.redis.url or f"redis://127.0.0.1:{settings.redis.embedded_port}/0"


def create_celery(broker_url: str | None = None) -> Celery:
    url = broker_url or _broker_url()
    app = Celery("kommo_agent", broker=url, backend=url, include=[m for m in TASK_MODULES if importlib.util.find_spec(m)])
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
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        result_backend_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        enable_utc=True,
    )
    return app


celery_app = create_celery(os.environ.get("CELERY_BROKER_URL"))
