"""Process commands: `up` (everything, embedded default), `web`, `worker`, `beat`, `bot`."""

from __future__ import annotations

import asyncio
import os
import sys

import click

from core.config import load_settings
from core.logging import configure_logging
from tasks.routing import QUEUES


def _logging() -> None:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)


@click.command()
@click.option("--ready-timeout", default=60.0, show_default=True, help="Seconds to wait for /readyz")
@click.option("--log-json/--readable", default=None,
              help="Pass the processes' JSON log lines through (the default off a terminal), or show only "
                   "their warnings and errors as readable lines (the default on a terminal)")
@click.option("--no-demo", is_flag=True, help="Do not create the demo organisation on a fresh installation")
def up(ready_timeout: float, log_json: bool | None, no_demo: bool) -> None:
    """Start every service and process; Ctrl-C stops them all.

    On a fresh installation (no organisation yet) it creates a demo shop with the agent Anna and
    prints what to do next."""
    from cli.supervisor import Supervisor  # noqa: PLC0415 - each process command loads only its process

    raw = (not sys.stdout.isatty()) if log_json is None else log_json
    sys.exit(Supervisor(load_settings(), ready_timeout=ready_timeout, raw_logs=raw, seed_demo=not no_demo).run())


@click.command()
def web() -> None:
    """The aiohttp app: Kommo webhooks, OAuth callback, health and metrics."""
    from core.eventloop import run  # noqa: PLC0415 - as above
    from web.server import serve  # noqa: PLC0415 - as above

    _logging()
    run(serve(load_settings()))


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--pool", default=None, help="Celery pool (threads in embedded mode)")
@click.option("--concurrency", "-c", default=None, type=int)
@click.option("--queues", "-Q", default=",".join(QUEUES), show_default=True)
def worker(pool: str | None, concurrency: int | None, queues: str) -> None:
    """A Celery worker for the inbound, kommo, ingest and reports queues."""
    from tasks import metrics as task_metrics  # noqa: PLC0415 - as above (and it connects Celery signals)
    from tasks.app import celery_app  # noqa: PLC0415 - as above

    _logging()
    settings = load_settings()
    task_metrics.serve(settings.worker.metrics_port)
    # Embedded Qdrant Edge can be opened by one process only, so the embedded worker is one
    # process with threads, and it owns the store from start-up to exit (CLI commands then go
    # through it, cli/stack.py); with a Qdrant server, prefork workers scale out.
    if settings.qdrant.url is None:
        _own_the_store(settings)
    pool = pool or ("threads" if settings.qdrant.url is None else "prefork")
    code: int | str | None = 0
    try:
        celery_app.worker_main(["worker", "--loglevel", settings.log_level, "-Q", queues, "--pool", pool,
                                "-c", str(concurrency or settings.worker.concurrency), "--without-gossip",
                                "--without-mingle"])
    except SystemExit as exc:
        code = exc.code
    # Celery has finished (a stopping worker ends its ingestions as interrupted first); an
    # encoder batch still computing in an abandoned thread must not hold the exit for its length
    # (the interpreter would join those threads at exit).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 1)


def _own_the_store(settings) -> None:
    import time  # noqa: PLC0415 - as above

    from cli.stack import WORKER_ROLE, store_dir  # noqa: PLC0415 - as above
    from core.storage import owner  # noqa: PLC0415 - as above
    from core.storage.errors import StoreBusy  # noqa: PLC0415 - as above

    told = False
    while True:
        try:
            owner.acquire(store_dir(settings), WORKER_ROLE)  # held until the process exits
            return
        except StoreBusy as exc:
            if not told:
                click.echo(f"waiting: {exc}", err=True)
                told = True
            time.sleep(1)


@click.command()
def beat() -> None:
    """Celery beat: token refresh, periodic sync, follow-ups."""
    from tasks.app import celery_app  # noqa: PLC0415 - as above

    _logging()
    settings = load_settings()
    schedule = settings.data_dir / "celerybeat-schedule"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    celery_app.start(["beat", "--loglevel", settings.log_level, "-s", str(schedule)])


@click.command()
def bot() -> None:
    """The Telegram admin bot (long polling)."""
    from bot.main import run_polling  # noqa: PLC0415 - as above
    from tasks.app import create_celery  # noqa: PLC0415 - as above
    from tasks.queue import CeleryTaskQueue  # noqa: PLC0415 - as above

    _logging()
    settings = load_settings()
    asyncio.run(run_polling(settings, CeleryTaskQueue(create_celery(settings=settings))))


COMMANDS = (up, web, worker, beat, bot)
