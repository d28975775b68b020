"""The bot's command menu, per language: the default one for each Telegram app language at
start-up, and the chosen one for a user's own chat after /lang."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from aiogram.utils.i18n import I18n

from bot.i18n import CatalogI18n
from core.languages import OPERATOR_LANGUAGES

COMMANDS = ("start", "agents", "team", "kommo", "usage", "report", "org", "lang", "help", "cancel")


def command_list(i18n: CatalogI18n, language: str) -> list[BotCommand]:
    return [BotCommand(command=c, description=i18n.gettext(f"command.{c}", locale=language)) for c in COMMANDS]


async def set_default_commands(bot: Bot, i18n: CatalogI18n) -> None:
    await bot.set_my_commands(command_list(i18n, "en"), scope=BotCommandScopeDefault())
    for language in OPERATOR_LANGUAGES:
        await bot.set_my_commands(command_list(i18n, language), scope=BotCommandScopeDefault(),
                                  language_code=language)


async def set_user_commands(bot: Bot, chat_id: int, language: str) -> None:
    i18n = I18n.get_current()
    await bot.set_my_commands(command_list(i18n, language), scope=BotCommandScopeChat(chat_id=chat_id))
