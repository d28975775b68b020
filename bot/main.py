"""Composition root of the Telegram console: core services built once and passed as workflow
data (`bot.deps.ConsoleDeps`), the Bot with its limits (429 retry, per-chat pacing), the
Dispatcher with dialog state in Redis, long polling or the web app's webhook route."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.storage.base import DefaultKeyBuilder
from aiogram.fsm.storage.redis import RedisStorage
from aiogram_dialog import setup_dialogs

from bot.commands import set_default_commands
from bot.deps import ConsoleDeps
from bot.handlers import build_root_router
from bot.i18n import CatalogI18n, ConsoleI18nMiddleware, build_i18n
from bot.messages import ConsoleMessageManager
from bot.middlewares import ActorMiddleware
from bot.notify import TelegramSender, delivery_loop
from bot.session import ChatPacingMiddleware, RetryAfterMiddleware
from core.agents.service import AgentAdmin
from core.config import Settings, TelegramSettings
from core.errors import ConfigurationError
from core.logging import get_logger
from core.notifications.delivery import NotificationDelivery
from core.ports import TaskQueue
from core.services import CoreServices, build_services
from core.team.service import TeamService

log = get_logger("bot")


class SharedRedisStorage(RedisStorage):
    """Dialog and FSM state on the services' own Redis client: the dispatcher must not close
    a connection pool that the rest of the process still uses."""

    async def close(self) -> None:
        return None


def build_bot(settings: TelegramSettings) -> Bot:
    if settings.bot_token is None:
        raise ConfigurationError("TELEGRAM_BOT_TOKEN is not set")
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.api_base_url)) if settings.api_base_url \
        else AiohttpSession()
    session.middleware(RetryAfterMiddleware(max_wait_s=settings.retry_after_max_s))
    session.middleware(ChatPacingMiddleware(interval_s=settings.chat_interval_s, burst=settings.chat_burst))
    return Bot(settings.bot_token.get_secret_value(), session=session)


def console_deps(services: CoreServices) -> ConsoleDeps:
    return ConsoleDeps(services=services, team=TeamService(services.storage),
                       agents=AgentAdmin(services.storage, services.plans),
                       delivery=NotificationDelivery(services.storage), telegram_settings=services.settings.telegram)


def build_dispatcher(services: CoreServices, i18n: CatalogI18n | None = None) -> Dispatcher:
    storage = SharedRedisStorage(services.redis, key_builder=DefaultKeyBuilder(with_destiny=True))
    isolation = storage.create_isolation()  # per-chat lock in Redis: several web processes may serve webhooks
    dp = Dispatcher(storage=storage, events_isolation=isolation, **console_deps(services))
    i18n = i18n or build_i18n()
    actor, language = ActorMiddleware(), ConsoleI18nMiddleware(i18n)
    for observer in (dp.update, dp.errors):
        observer.outer_middleware(actor)
        observer.outer_middleware(language)
    dp.include_router(build_root_router())
    setup_dialogs(dp, message_manager=ConsoleMessageManager(), events_isolation=isolation)
    dp["i18n_instance"] = i18n
    return dp


@dataclass
class Console:
    """A running console: its bot, dispatcher and the notification delivery loop."""

    bot: Bot
    dp: Dispatcher
    stop: asyncio.Event
    loop_task: asyncio.Task | None = None

    async def start_background(self) -> None:
        sender = TelegramSender(self.bot, self.dp["i18n_instance"], self.dp["services"].storage)
        interval = self.dp["telegram_settings"].notify_interval_s
        self.loop_task = asyncio.create_task(delivery_loop(self.dp["delivery"], sender, interval, self.stop))
        with contextlib.suppress(Exception):
            await set_default_commands(self.bot, self.dp["i18n_instance"])

    async def close(self) -> None:
        self.stop.set()
        if self.loop_task is not None:
            await self.loop_task
        await self.bot.session.close()


def build_console(services: CoreServices) -> Console:
    return Console(bot=build_bot(services.settings.telegram), dp=build_dispatcher(services), stop=asyncio.Event())


def webhook_secret(settings: TelegramSettings) -> str:
    """The secret Telegram sends with each webhook call: configured, or derived from the token."""
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value()
    return hashlib.sha256(b"kommo-agent-webhook:" + settings.bot_token.get_secret_value().encode()).hexdigest()


async def run_polling(settings: Settings, queue: TaskQueue | None = None) -> None:
    """`queue`: how the console hands work to the workers (the process command passes Celery's)."""
    if settings.telegram.webhook_url:
        log.info("TELEGRAM_WEBHOOK_URL is set: the web app serves the bot", url=settings.telegram.webhook_url)
        return
    services = await build_services(settings, queue=queue)
    console = build_console(services)
    try:
        await console.start_background()
        await console.bot.delete_webhook(drop_pending_updates=False)
        await console.dp.start_polling(console.bot, handle_signals=True, close_bot_session=False)
    finally:
        await console.close()
        await services.close()
