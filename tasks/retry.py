"""Retry policy shared by the tasks: which failures are transient, and the backoff."""

from __future__ import annotations

import random

from pymongo.errors import AutoReconnect, ConnectionFailure, NetworkTimeout, ServerSelectionTimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.config import load_settings
from core.conversations.errors import RetryLater
from core.conversations.locks import ConversationBusy
from core.kommo.errors import TRANSIENT as KOMMO_TRANSIENT
from core.kommo.errors import ActionInProgress

# A database or broker blip: the same call will work once the server is back.
INFRA_ERRORS = (AutoReconnect, ConnectionFailure, NetworkTimeout, ServerSelectionTimeoutError,
                RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)
# Kommo's transient errors can surface outside the engine's own handling (e.g. while handing
# off after a failure); every step is idempotent, so retrying them is always safe.
TRANSIENT = (RetryLater, ConversationBusy, ActionInProgress, *KOMMO_TRANSIENT, *INFRA_ERRORS)


def countdown(exc: BaseException, retries: int) -> float:
    cap = load_settings().worker.max_retry_countdown_s
    hinted = getattr(exc, "countdown", None)
    if hinted:
        return min(float(hinted), cap)
    return min(cap, (2 ** min(retries, 10)) * (0.5 + random.random()))


def retry_or_fail(task, exc: BaseException, on_final_failure) -> str:
    """Retry with backoff; once retries are used up, run `on_final_failure` (a handoff and an
    alert) instead of dropping the work. (Celery re-raises `exc` itself when `retry(exc=...)`
    exceeds max_retries, so the limit is checked here.)"""
    if task.request.retries >= task.max_retries:
        on_final_failure()
        return "failed"
    raise task.retry(exc=exc, countdown=countdown(exc, task.request.retries))
