"""Composition root of the Telegram console: core services built once, passed as workflow data."""

from __future__ import annotations

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.storage.redis import RedisStorage

from bot.handlers import build_root_router
from core.config import Settings
from core.errors import ConfigurationError
from core.services import CoreServices, build_services, effective_redis_url


def build_bot(settings: Settings) -> Bot:
    if settings.telegram.bot_token is None:
        raise ConfigurationError("TELEGRAM_BOT_TOKEN is not set")
    session = AiohttpSession(
        api=TelegramAPIServer.from_base(settings.telegram.api_base_url)
    ) if settings.telegram.api_base_url else AiohttpSession()
    return Bot(settings.telegram.bot_token.get_secret_value(), session=session)


def build_dispatcher(services: CoreServices) -> Dispatcher:
    storage = RedisStorage.from_url(effective_redis_url(services.settings))
    dp = Dispatcher(storage=storage, services=services)
    dp.include_router(build_root_router())
    return dp


async def run_polling(settings: Settings) -> None:
    services = await build_services(settings)
    bot = build_bot(settings)
    dp = build_dispatcher(services)
    try:
        await dp.start_polling(bot)
    finally:
        await bot.session.close()
        await services.close()
