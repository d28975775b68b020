"""Reaching the running stack from a one-off command.

In the embedded default the worker of `kommo-agent up` owns the vector store (an flock in its
folder, `core.storage.owner`) for as long as it runs. A command that needs the store asks who owns
it: nobody, and it opens the store itself (holding the lock meanwhile); the stack's worker, and
it hands the work to that worker as a Celery task with a result and waits, never opening the
store a second time. With `QDRANT_URL` there is no owner and any process opens the store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from core.config import Settings
from core.errors import ServiceUnavailable
from core.storage.errors import StoreBusy
from core.storage.owner import current_owner

WORKER_ROLE = "the worker of kommo-agent up"


def store_dir(settings: Settings):
    return settings.vectors_dir / settings.qdrant.collection


def through_stack(settings: Settings) -> bool:
    """True when the running stack's worker owns the store (so work must go through it)."""
    if settings.qdrant.url:
        return False
    owner = current_owner(store_dir(settings))
    if owner is None or owner.role == "this process":
        return False
    if owner.role != WORKER_ROLE:
        raise StoreBusy(f"the knowledge store is in use by {owner.describe()}; wait for it to finish "
                        "and run this command again")
    return True


async def call(settings: Settings, name: str, args: list[Any], *, timeout: float | None = None,
               while_waiting: Callable[[], Awaitable[None]] | None = None,
               on_cancel: Callable[[], Awaitable[None]] | None = None) -> dict:
    """Run task `name` on the stack's worker and return its result. Ctrl-C calls `on_cancel`
    (which asks the worker to stop) before it is passed on."""
    from celery.exceptions import TimeoutError as ResultTimeout  # noqa: PLC0415 - only when going through the stack

    from tasks.app import create_celery  # noqa: PLC0415 - as above

    app = create_celery(settings=settings)
    try:
        result = await asyncio.to_thread(app.send_task, name, args=args)
    except Exception as exc:  # noqa: BLE001 - kombu raises many kinds; the user needs one line
        raise ServiceUnavailable("cannot reach the running stack's Redis; is `kommo-agent up` still running?",
                                 detail=str(exc)) from None
    deadline = None if timeout is None else time.monotonic() + timeout
    lost = ServiceUnavailable("lost the running stack while waiting (did `kommo-agent up` stop?); "
                              "run the command again")
    try:
        while True:
            try:
                outcome = await asyncio.to_thread(result.get, timeout=1.0, propagate=False,
                                                  disable_sync_subtasks=False)
            except ResultTimeout:
                outcome = None
            except Exception:  # noqa: BLE001 - the result backend (the stack's Redis) went away
                raise lost from None
            if isinstance(outcome, BaseException):
                raise ServiceUnavailable(f"the stack's worker failed on this request; see "
                                         f"{settings.data_dir / 'logs' / 'worker.log'}")
            if outcome is not None:
                return outcome
            if while_waiting is not None:
                try:
                    await while_waiting()
                except Exception:  # noqa: BLE001 - the stack's MongoDB went away
                    raise lost from None
            if deadline is not None and time.monotonic() > deadline:
                raise ServiceUnavailable(f"the stack's worker did not answer within {timeout:.0f}s; see "
                                         f"{settings.data_dir / 'logs' / 'worker.log'}")
    except asyncio.CancelledError:
        if on_cancel is not None:
            await on_cancel()
        raise
    finally:
        await asyncio.to_thread(app.close)
