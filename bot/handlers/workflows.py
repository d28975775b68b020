"""Commands that open a workflow's dialog above the main menu (so Back and Cancel lead there)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import Message
from aiogram_dialog import DialogManager, ShowMode, StartMode

from bot.dialogs.states import Agents, Campaigns, Knowledge, Kommo, MainMenu, Team, TestChat
from bot.dialogs.testchat import user_key
from bot.filters import Can
from bot.i18n import _
from core.team.roles import Permission


async def _open(dialog_manager: DialogManager, state) -> None:
    await dialog_manager.start(MainMenu.main, mode=StartMode.RESET_STACK, show_mode=ShowMode.NO_UPDATE)
    await dialog_manager.start(state, show_mode=ShowMode.SEND)


async def agents(message: Message, dialog_manager: DialogManager) -> None:
    await _open(dialog_manager, Agents.list)


async def team(message: Message, dialog_manager: DialogManager) -> None:
    await _open(dialog_manager, Team.list)


async def kommo(message: Message, dialog_manager: DialogManager) -> None:
    await _open(dialog_manager, Kommo.status)


async def test(message: Message, dialog_manager: DialogManager) -> None:
    await _open(dialog_manager, TestChat.agent)


async def knowledge(message: Message, dialog_manager: DialogManager) -> None:
    await _open(dialog_manager, Knowledge.agent)


async def campaigns(message: Message, dialog_manager: DialogManager) -> None:
    await _open(dialog_manager, Campaigns.list)


async def stop(message: Message, dialog_manager: DialogManager, test_chat, org=None) -> None:
    """Leave the test chat (its memory goes with it) and return to the menu."""
    left = org is not None and await test_chat.leave(org.id, user_key(message.from_user.id))
    await message.answer(_("testchat.left" if left else "testchat.not_open"))
    if org is not None:
        await dialog_manager.start(MainMenu.main, mode=StartMode.RESET_STACK, show_mode=ShowMode.SEND)


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private")
    router.message.register(agents, Command("agents"), Can(Permission.VIEW))
    router.message.register(team, Command("team"), Can(Permission.VIEW))
    router.message.register(kommo, Command("kommo"), Can(Permission.MANAGE_KOMMO))
    router.message.register(test, Command("test"), Can(Permission.MANAGE_AGENTS))
    router.message.register(knowledge, Command("knowledge"), Can(Permission.MANAGE_AGENTS))
    router.message.register(campaigns, Command("campaigns"), Can(Permission.MANAGE_AGENTS))
    router.message.register(stop, Command("stop"))
    return router
