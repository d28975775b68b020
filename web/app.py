"""The aiohttp app: Kommo webhooks and OAuth callback, the Telegram webhook (when configured),
health, readiness and metrics.

It validates, stores, enqueues and answers; it never calls the LLM.
"""

from __future__ import annotations

from aiohttp import web

from core.services import CoreServices
from web.keys import SERVICES
from web.middlewares import request_context_middleware
from web.routes import health, kommo, telegram


def create_app(services: CoreServices) -> web.Application:
    """The app over `services`, which must carry the task queue (`build_services(..., queue=...)`)."""
    app = web.Application(
        middlewares=[request_context_middleware],
        client_max_size=services.settings.kommo.max_webhook_body_bytes,
    )
    app[SERVICES] = services
    health.setup(app)
    kommo.setup(app)
    telegram.setup(app)
    return app
