from __future__ import annotations

import itertools
import os
import time

import structlog
from aiohttp import web
from prometheus_client import Counter, Histogram

REQUESTS = Counter("http_requests_total", "HTTP requests", ["route", "status"])
LATENCY = Histogram("http_request_seconds", "HTTP request latency", ["route"])
log = structlog.get_logger("web")

# Request ids: a random per-process prefix and a counter (unique, 32 hex chars like a uuid4 hex)
# instead of a uuid4 (an os.urandom call) per request.
_ID_PREFIX = os.urandom(10).hex()
_ID_COUNTER = itertools.count(1)
# Labelled metric children, looked up once per (route, status) instead of per request.
_COUNTERS: dict[tuple[str, int], object] = {}
_HISTOGRAMS: dict[str, object] = {}
_bind = structlog.contextvars.bind_contextvars
_unbind = structlog.contextvars.unbind_contextvars


def _observe(route: str, status: int, seconds: float) -> None:
    counter = _COUNTERS.get((route, status))
    if counter is None:
        counter = _COUNTERS[(route, status)] = REQUESTS.labels(route, str(status))
    histogram = _HISTOGRAMS.get(route)
    if histogram is None:
        histogram = _HISTOGRAMS[route] = LATENCY.labels(route)
    counter.inc()
    histogram.observe(seconds)


@web.middleware
async def request_context_middleware(request: web.Request, handler):
    request_id = request.headers.get("X-Request-Id") or f"{_ID_PREFIX}{next(_ID_COUNTER):012x}"
    _bind(request_id=request_id)
    resource = request.match_info.route.resource
    route = resource.canonical if resource else "unmatched"
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except Exception:
        log.exception("unhandled error", route=route)
        return web.json_response({"error": "internal error", "request_id": request_id}, status=500)
    finally:
        _observe(route, status, time.perf_counter() - started)
        _unbind("request_id")
