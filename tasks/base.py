"""`CoreTask`, the base of every task: settings read once per process, core services shared.

A task takes ids, calls one core service through `self.core(...)` and returns a small summary.
The process's settings, event loop and `CoreServices` (with this app's task queue) are built
once, on first use, and cached here and in `tasks.runtime` — never at import time, so importing
a task module (the web app, the CLI) reads no environment and opens no connection.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import structlog
from celery import Task

from core.config import Settings, load_settings
from core.conversations.errors import OrganisationBusy
from core.services import CoreServices
from tasks import runtime

T = TypeVar("T")


class CoreTask(Task):
    abstract = True
    _settings: ClassVar[Settings | None] = None

    @property
    def settings(self) -> Settings:
        if CoreTask._settings is None:
            CoreTask._settings = load_settings()
        return CoreTask._settings

    @property
    def max_retries(self) -> int:  # Celery reads it when retrying; from settings, not import time
        return self.settings.worker.max_retries

    def core(self, job: Callable[[CoreServices], Awaitable[T]], timeout: float | None = None) -> T:
        """Run `job(services)` on the process's core event loop and wait for its result; every log
        line it writes carries this task's id and name (the loop runs in another thread, so the
        ids are bound inside the coroutine, in its own context)."""
        task_id, name = self.request.id, self.name

        async def bound(services: CoreServices) -> T:
            structlog.contextvars.bind_contextvars(task_id=task_id, task=name)
            return await job(services)

        return runtime.run(bound, self.settings, self.app, timeout)

    def countdown(self, exc: BaseException) -> float:
        cap = self.settings.worker.max_retry_countdown_s
        hinted = getattr(exc, "countdown", None)
        if hinted:
            return min(float(hinted), cap)
        return min(cap, (2 ** min(self.request.retries, 10)) * (0.5 + random.random()))

    def retry_or_fail(self, exc: BaseException, on_final_failure: Callable[[CoreServices], Awaitable[Any]]) -> str:
        """Retry with backoff; once retries are used up, run `on_final_failure` (a handoff and an
        alert) instead of dropping the work. (Celery re-raises `exc` itself when `retry(exc=...)`
        exceeds max_retries, so the limit is checked here.)"""
        if isinstance(exc, OrganisationBusy):  # flow control: a flooding account waits its turn
            raise self.retry(exc=exc, countdown=self.countdown(exc), max_retries=None)
        if self.request.retries >= self.max_retries:
            self.core(on_final_failure)
            return "failed"
        raise self.retry(exc=exc, countdown=self.countdown(exc))
