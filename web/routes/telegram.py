"""Telegram webhook mode (`TELEGRAM_WEBHOOK_URL` set): the web app serves the console.

The route checks Telegram's secret-token header in constant time (401 otherwise), answers 200
at once and feeds the update to the console's dispatcher in the background, as Telegram wants
a quick answer. At start-up the webhook is registered with Telegram and the notification
delivery loop starts here instead of in a polling bot process.
"""

from __future__ import annotations

import asyncio
import secrets
from urllib.parse import urlsplit

from aiohttp import web

from core.logging import get_logger
from web.keys import SERVICES

log = get_logger("web.telegram")
CONSOLE = web.AppKey("telegram_console", object)
TASKS = web.AppKey("telegram_tasks", set)
DEFAULT_PATH = "/telegram/webhook"


def webhook_path(url: str) -> str:
    return urlsplit(url).path or DEFAULT_PATH


async def telegram_webhook(request: web.Request) -> web.Response:
    from aiogram.types import Update  # noqa: PLC0415 - aiogram loads only where the bot runs in webhook mode

    from bot.main import webhook_secret  # noqa: PLC0415 - as above

    settings = request.app[SERVICES].settings.telegram
    given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
    if not secrets.compare_digest(given.encode(), webhook_secret(settings).encode()):
        return web.json_response({"ok": False, "error": "bad secret token"}, status=401)
    console = request.app.get(CONSOLE)
    if console is None:
        return web.json_response({"ok": False, "error": "console not started"}, status=503)
    try:
        update = Update.model_validate(await request.json(), context={"bot": console.bot})
    except ValueError:
        return web.json_response({"ok": False, "error": "not an update"}, status=400)
    task = asyncio.create_task(console.dp.feed_update(console.bot, update))
    request.app[TASKS].add(task)
    task.add_done_callback(request.app[TASKS].discard)
    return web.json_response({"ok": True})


async def _startup(app: web.Application) -> None:
    from bot.main import build_console, webhook_secret  # noqa: PLC0415 - as above

    services = app[SERVICES]
    settings = services.settings.telegram
    console = build_console(services)
    app[CONSOLE] = console
    await console.bot.set_webhook(settings.webhook_url, secret_token=webhook_secret(settings),
                                  allowed_updates=["message", "callback_query", "my_chat_member"])
    await console.start_background()
    log.info("telegram webhook registered", path=webhook_path(settings.webhook_url))


async def _cleanup(app: web.Application) -> None:
    if app[TASKS]:
        await asyncio.gather(*app[TASKS], return_exceptions=True)
    console = app.get(CONSOLE)
    if console is not None:
        await console.close()


def setup(app: web.Application) -> None:
    settings = app[SERVICES].settings.telegram
    if settings.bot_token is None or not settings.webhook_url:
        return  # long polling (or no bot at all): the bot process serves Telegram
    app[TASKS] = set()
    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    app.router.add_post(webhook_path(settings.webhook_url), telegram_webhook)
