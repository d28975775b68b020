"""Shared CLI plumbing: run a coroutine with core services, print errors the user can act on.

In the embedded default (no MONGO_URL / REDIS_URL) a one-off command such as `org create` works
whether or not `kommo-agent up` is running: if nothing listens on the embedded port, the command
starts the server on its home's data folder for its own duration (in its own session, dying with
it); if something listens there, it must be this home's server (its pid file in the data folder),
or the command refuses rather than write into another installation.

Every error is one line, `error: <what>` and what to do, never a traceback or a class name.
"""

from __future__ import annotations

import asyncio
import atexit
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import IO, TypeVar

import click
from pymongo.errors import PyMongoError, ServerSelectionTimeoutError
from redis.exceptions import RedisError

from core.config import Settings, load_settings
from core.errors import KommoAgentError, NotFound
from core.logging import configure_logging
from core.redact import url_without_password
from core.services import CoreServices, build_services, effective_redis_url
from core.storage.embedded import (
    mongo_command,
    mongo_pid_file,
    port_is_open,
    redis_command,
    redis_pid_file,
    serves_folder,
    start_server,
    stop_server,
)
from tasks.app import create_celery
from tasks.queue import CeleryTaskQueue

T = TypeVar("T")
_started: list[subprocess.Popen] = []
_log_file: IO[str] | None = None


class CliError(Exception):
    """A refusal the CLI prints as one line and exits 1."""


def _stop_started() -> None:
    while _started:
        stop_server(_started.pop())


def ensure_embedded_servers(settings: Settings) -> None:
    """Start this home's embedded MongoDB and Redis if the command needs them and nothing runs
    (once per process); refuse a server on the port that belongs to another home."""
    plan = []
    if not settings.mongo.url:
        folder = settings.mongo_dir.resolve()
        plan.append(("MongoDB (nx-27017)", settings.mongo.embedded_port, "MONGO_EMBEDDED_PORT",
                     mongo_pid_file(folder), folder, lambda f=folder: mongo_command(f, settings.mongo.embedded_port)))
    if not settings.redis.url:
        folder = (settings.data_dir / "redis").resolve()
        plan.append(("Redis", settings.redis.embedded_port, "REDIS_EMBEDDED_PORT", redis_pid_file(folder), None,
                     lambda f=folder: redis_command(f, settings.redis.embedded_port)))
    for what, port, setting, pid_file, folder, command in plan:
        if port_is_open("127.0.0.1", port):
            if not serves_folder(pid_file, port, folder):
                raise CliError(f"port {port} is served by another {what} than this home's "
                               f"({settings.data_dir}); stop that one, or set {setting} (or KOMMO_AGENT_HOME "
                               "to the home it belongs to)")
            continue
        if not _started:
            atexit.register(_stop_started)
        _started.append(start_server(command(), port))


def _log_to_file(settings: Settings) -> None:
    """A one-off command's own log lines go to <home>/logs/cli.log: its standard output is what
    scripts read (ids, listings, JSON), and its terminal shows only what the command says."""
    logs = settings.data_dir / "logs"
    try:
        logs.mkdir(parents=True, exist_ok=True)
        stream = open(logs / "cli.log", "a", encoding="utf-8", buffering=1)
    except OSError:
        stream = sys.stderr
    configure_logging(settings.log_level, json=True, stream=stream)


def run_with_services(job: Callable[[CoreServices], Awaitable[T]], settings: Settings | None = None) -> T:
    """Build services, run `job`, close them; errors exit 1 (Ctrl-C 130) with a one-line reason."""
    settings = settings or load_settings()
    _log_to_file(settings)

    async def _main() -> T:
        # The queue connects only when a command hands work to a worker.
        queue = CeleryTaskQueue(create_celery(settings=settings), fair_share_per_minute=settings.worker.fair_share_per_minute)
        services = await build_services(settings, queue=queue, create_key_file=settings.mongo.url is None)
        try:
            return await job(services)
        finally:
            await services.close()

    try:
        ensure_embedded_servers(settings)
        return asyncio.run(_main())
    except KeyboardInterrupt:
        click.echo("\ninterrupted", err=True)
        sys.exit(130)
    except ServerSelectionTimeoutError:
        where = (url_without_password(settings.mongo.url) if settings.mongo.url
                 else f"the embedded server on port {settings.mongo.embedded_port}")
        fail(f"cannot reach MongoDB at {where}; start it, or run `kommo-agent up`")
    except RedisError:
        fail(f"cannot reach Redis at {url_without_password(effective_redis_url(settings))}; start it, "
             "or run `kommo-agent up`")
    except PyMongoError as exc:
        fail(f"database error: {url_without_password(str(exc)).splitlines()[0][:300]}")
    except (KommoAgentError, CliError, TimeoutError, RuntimeError, FileNotFoundError, OSError) as exc:
        fail(url_without_password(str(exc)))


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


async def require_org(services: CoreServices, org_id: str):
    org = await services.storage.orgs.get(org_id)
    if org is None:
        raise NotFound(f"no organisation {org_id} (see `kommo-agent org list`)")
    return org


async def require_agent(services: CoreServices, org_id: str, agent_id: str):
    agent = await services.storage.agents.get(org_id, agent_id)
    if agent is None:
        await require_org(services, org_id)
        raise NotFound(f"no agent {agent_id} in organisation {org_id} (see `kommo-agent agent list --org {org_id}`)")
    return agent
