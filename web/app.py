"""The aiohttp app: Kommo webhooks and OAuth callback, the Telegram webhook (when configured),
health, readiness and metrics.

It validates, stores, enqueues and answers; it never calls the LLM.
"""

from __future__ import annotations

from aiohttp import web

from core.ports import TaskQueue
from core.services import CoreServices
from web.keys import QUEUE, SERVICES
from web.middlewares import request_context_middleware
from web.routes import health, kommo, telegram


def create_app(services: CoreServices, queue: TaskQueue) -> web.Application:
    app = web.Application(
        middlewares=[request_context_middleware],
        client_max_size=services.settings.kommo.max_webhook_body_bytes,
    )
    app[SERVICES] = services
    app[QUEUE] = queue
    health.setup(app)
    kommo.setup(app)
    telegram.setup(app)
    app.on_cleanup.append(_close_queue)
    return app


async def _close_queue(app: web.Application) -> None:
    close = getattr(app[QUEUE], "close", None)  # the Celery queue holds a broker connection
    if close is not None:
        await close()
