"""Run async core services from sync Celery tasks.

One event loop per worker process, running in a daemon thread; every task submits its
coroutine to it. Clients (Mongo, Redis, HTTP sessions, the vector store) are built once on that
loop and never cross loops. Never `asyncio.run` per task: it rebuilds clients and breaks
loop-bound ones.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from celery import Celery

from core.config import Settings
from core.eventloop import new_event_loop
from core.services import CoreServices, build_services
from tasks.queue import CeleryTaskQueue

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_services: asyncio.Future | None = None


def _ensure_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None:
            loop = new_event_loop()
            threading.Thread(target=loop.run_forever, name="core-loop", daemon=True).start()
            _loop = loop
        return _loop


async def _get_services(settings: Settings, app: Celery) -> CoreServices:
    global _services
    if _services is None:
        queue = CeleryTaskQueue(app, fair_share_per_minute=settings.worker.fair_share_per_minute)
        _services = asyncio.ensure_future(build_services(settings, queue=queue))
    return await asyncio.shield(_services)


def call_soon(fn: Callable[[], object]) -> None:
    """Run `fn` on the process loop soon (from any thread); nothing if no loop was started."""
    with _lock:
        loop = _loop
    if loop is not None and loop.is_running():
        loop.call_soon_threadsafe(fn)


def run(job: Callable[[CoreServices], Awaitable[T]], settings: Settings, app: Celery,
        timeout: float | None = None) -> T:
    """Run `job(services)` on the process loop and wait for its result."""

    async def _call() -> T:
        return await job(await _get_services(settings, app))

    return asyncio.run_coroutine_threadsafe(_call(), _ensure_loop()).result(timeout)
