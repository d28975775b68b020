"""`/healthz` (process alive), `/readyz` (Mongo and Redis reachable), `/metrics` (Prometheus)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core import metrics as core_metrics
from core.logging import get_logger
from core.storage.mongo import ping
from tasks.routing import QUEUES
from web.keys import SERVICES

log = get_logger("web.health")


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    checks = {"mongo": ping(services.mongo_client), "redis": services.redis.ping()}
    failing = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check, timeout=2.0)
        except TimeoutError:
            failing[name] = "timeout"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", named
            # The page is public: it names the part, the log (scrubbed) holds the details.
            log.warning("readiness check failed", part=name, error=f"{type(exc).__name__}: {exc}"[:300])
            failing[name] = "unreachable"
    if failing:
        return web.json_response({"status": "unavailable", "failing": failing}, status=503)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    # Queue depth is read at scrape time from the broker (Celery's Redis lists are named after
    # the queues); a broker that does not answer leaves the last figures and the scrape succeeds.
    redis = request.app[SERVICES].redis
    try:
        for queue in QUEUES:
            core_metrics.QUEUE_DEPTH.labels(queue).set(await asyncio.wait_for(redis.llen(queue), timeout=1.0))
    except Exception as exc:  # noqa: BLE001 - metrics must not fail because the broker is down
        log.warning("queue depth not read", error=type(exc).__name__)
    resp = web.Response(body=generate_latest())
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return resp


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
