"""Run the web app as a process (`kommo-agent web`)."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from core.config import Settings
from core.logging import get_logger
from core.services import build_services
from tasks.app import create_celery
from tasks.queue import CeleryTaskQueue
from web.app import create_app

log = get_logger("web")


async def serve(settings: Settings) -> None:
    queue = CeleryTaskQueue(create_celery(settings=settings), fair_share_per_minute=settings.worker.fair_share_per_minute)
    services = await build_services(settings, queue=queue)
    app = create_app(services)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.web.host, settings.web.port, reuse_address=True)
    await site.start()
    log.info("web listening", host=settings.web.host, port=settings.web.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await services.close()
