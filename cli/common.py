"""Shared CLI plumbing: run a coroutine with core services, print errors without tracebacks.

In the embedded default (no MONGO_URL) a one-off command such as `org create` works whether or
not `kommo-agent up` is running: if nothing listens on the embedded port, the command starts
nx-27017 on the same data folder for its own duration.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import click
from pymongo.errors import PyMongoError, ServerSelectionTimeoutError

from core.config import Settings, load_settings
from core.errors import KommoAgentError
from core.services import CoreServices, build_services
from core.storage.embedded import port_is_open, running_mongo
from tasks.app import create_celery
from tasks.queue import CeleryTaskQueue

T = TypeVar("T")


@contextmanager
def embedded_mongo_if_needed(settings: Settings) -> Iterator[None]:
    port = settings.mongo.embedded_port
    if settings.mongo.url or port_is_open("127.0.0.1", port):
        yield
        return
    with running_mongo(settings.mongo_dir, port):
        yield


def run_with_services(job: Callable[[CoreServices], Awaitable[T]], settings: Settings | None = None) -> T:
    """Build services, run `job`, close them; domain errors exit 1 with a one-line reason."""
    settings = settings or load_settings()

    async def _main() -> T:
        # The queue connects only when a command hands work to a worker.
        queue = CeleryTaskQueue(create_celery(settings=settings), fair_share_per_minute=settings.worker.fair_share_per_minute)
        services = await build_services(settings, queue=queue, create_key_file=settings.mongo.url is None)
        try:
            return await job(services)
        finally:
            await services.close()

    try:
        with embedded_mongo_if_needed(settings):
            return asyncio.run(_main())
    except KommoAgentError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except ServerSelectionTimeoutError:
        where = settings.mongo.url or f"the embedded server on port {settings.mongo.embedded_port}"
        click.echo(f"error: cannot reach MongoDB at {where}", err=True)
        sys.exit(1)
    except PyMongoError as exc:
        click.echo(f"error: database error: {exc}", err=True)
        sys.exit(1)
    except (TimeoutError, RuntimeError, FileNotFoundError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
