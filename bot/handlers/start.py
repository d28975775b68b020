"""/start (onboarding, invite links, the main menu), /help, /lang, /cancel, /org."""

from __future__ import annotations

import re

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import Message
from aiogram_dialog import DialogManager, ShowMode, StartMode

from bot.commands import set_user_commands
from bot.dialogs.onboarding import operator_name
from bot.dialogs.states import MainMenu, Onboarding, Orgs, Settings
from bot.i18n import _, user_language
from bot.middlewares import refresh_actor
from core.team.service import TeamService

_PAYLOAD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


async def start_with_invite(message: Message, command: CommandObject, dialog_manager: DialogManager,
                            team: TeamService, **data) -> None:
    payload = command.args or ""
    if not _PAYLOAD.match(payload):
        await message.answer(_("error.invite_invalid"))
        return
    membership = await team.accept_invite(payload, message.from_user.id, operator_name(message))
    refresh_actor(dialog_manager.middleware_data, membership)
    await message.answer(_("onboarding.joined", org_name=membership.org.name,
                           role=_("role." + membership.operator.role)))
    await dialog_manager.start(MainMenu.main, mode=StartMode.RESET_STACK, show_mode=ShowMode.SEND)


async def start(message: Message, dialog_manager: DialogManager, operator=None, **data) -> None:
    await set_user_commands(message.bot, message.chat.id, user_language(data))
    if operator is None:
        await dialog_manager.start(Onboarding.choose, mode=StartMode.RESET_STACK, show_mode=ShowMode.SEND)
        return
    await dialog_manager.start(MainMenu.main, mode=StartMode.RESET_STACK, show_mode=ShowMode.SEND)


async def help_(message: Message) -> None:
    await message.answer(_("help.text"))


async def lang(message: Message, dialog_manager: DialogManager) -> None:
    await dialog_manager.start(Settings.language, mode=StartMode.RESET_STACK, show_mode=ShowMode.SEND)


async def cancel(message: Message, dialog_manager: DialogManager, operator=None) -> None:
    await dialog_manager.reset_stack()
    await message.answer(_("cancel.done"))
    if operator is not None:
        await dialog_manager.start(MainMenu.main, mode=StartMode.RESET_STACK, show_mode=ShowMode.SEND)


async def org(message: Message, dialog_manager: DialogManager, operator=None) -> None:
    if operator is None:
        await dialog_manager.start(Onboarding.choose, mode=StartMode.RESET_STACK, show_mode=ShowMode.SEND)
        return
    await dialog_manager.start(Orgs.list, mode=StartMode.RESET_STACK, show_mode=ShowMode.SEND)


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private")
    router.message.register(start_with_invite, CommandStart(deep_link=True))
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    router.message.register(lang, Command("lang"))
    router.message.register(cancel, Command("cancel"))
    router.message.register(org, Command("org"))
    return router
