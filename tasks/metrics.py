"""Worker metrics: task run time and outcome per queue (Celery signals), served over HTTP.

A worker serves `core.metrics` on WORKER_METRICS_PORT (0 = off). With the prefork pool every
child process counts its own tasks, so set PROMETHEUS_MULTIPROC_DIR (prometheus_client's
multiprocess mode) there; the embedded default runs one threaded worker and needs nothing.
"""

from __future__ import annotations

import os
import time

from celery import signals
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client import multiprocess as prometheus_multiprocess

from core import metrics
from core.logging import get_logger
from tasks.routing import QUEUES, ROUTES

log = get_logger("tasks.metrics")
_QUEUES = frozenset(QUEUES)
_started: dict[str, float] = {}


def queue_of(task_name: str) -> str:
    """The queue a task is routed to, by its area prefix (labels stay the few queue names)."""
    area = task_name.split(".", 1)[0] + ".*"
    return metrics.bounded(ROUTES.get(area, {}).get("queue"), _QUEUES)


@signals.task_prerun.connect
def _task_started(task_id: str | None = None, **_) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_finished(task_id: str | None = None, task=None, state: str | None = None, **_) -> None:
    started = _started.pop(task_id, None) if task_id else None
    queue = queue_of(getattr(task, "name", "") or "")
    metrics.TASKS.labels(queue, metrics.bounded(state, frozenset({"success", "failure", "retry", "revoked"}))).inc()
    if started is not None:
        metrics.TASK_SECONDS.labels(queue).observe(time.perf_counter() - started)


def serve(port: int) -> None:
    """Expose the metrics on `port` (0: not at all)."""
    if not port:
        return
    registry = None
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)
    start_http_server(port, registry=registry) if registry else start_http_server(port)
    log.info("worker metrics served", port=port)
