"""/lang and notification mutes: the user's console preferences."""

from __future__ import annotations

from typing import Any

from aiogram.types import CallbackQuery
from aiogram.utils.i18n import gettext
from aiogram_dialog import Dialog, DialogManager, StartMode, Window

from bot.commands import set_user_commands
from bot.dialogs.states import MainMenu, Settings
from bot.dialogs.widgets import Err, T, choice, common_getter, guarded, nav, paged
from bot.notify import NOTIFICATION_KINDS
from core.languages import OPERATOR_LANGUAGES
from core.team.service import TeamService

LANGUAGE_NAMES = {"ru": "Русский", "en": "English", "es": "Español"}


async def languages_getter(**_: Any) -> dict[str, Any]:
    return {"languages": [{"id": code, "label": LANGUAGE_NAMES[code]} for code in OPERATOR_LANGUAGES]}


@guarded
async def choose_language(callback: CallbackQuery, widget: Any, manager: DialogManager, code: str) -> None:
    team: TeamService = manager.middleware_data["team"]
    chosen = await team.set_language(callback.from_user.id, code)
    i18n = manager.middleware_data["i18n"]
    i18n.current_locale = chosen  # the rest of this update already speaks the new language
    await set_user_commands(callback.bot, callback.from_user.id, chosen)
    await callback.answer(gettext("lang.changed"))
    if manager.middleware_data.get("operator") is not None:
        await manager.start(MainMenu.main, mode=StartMode.RESET_STACK)
    else:
        await manager.done()


async def mutes_getter(dialog_manager: DialogManager, profile, org=None, **_: Any) -> dict[str, Any]:
    muted = set(profile.muted.get(org.id, [])) if org else set()
    return {"kinds": [{"id": kind, "label": ("🔕 " if kind in muted else "🔔 ") + gettext(f"kind.{kind}")}
                      for kind in NOTIFICATION_KINDS]}


@guarded
async def toggle_mute(callback: CallbackQuery, widget: Any, manager: DialogManager, kind: str) -> None:
    data = manager.middleware_data
    team: TeamService = data["team"]
    profile, org = data["profile"], data["org"]
    muted = kind in profile.muted.get(org.id, [])
    kinds = await team.set_muted(callback.from_user.id, org.id, kind, not muted)
    profile.muted[org.id] = kinds  # the getter runs in this update too


def settings() -> Dialog:
    return Dialog(
        Window(
            Err(),
            T("lang.choose"),
            choice("languages", "lang_sel", choose_language),
            nav(first=True),
            state=Settings.language,
            getter=languages_getter,
        ),
        Window(
            Err(),
            T("mutes.title"),
            paged("kinds", "mute_sel", toggle_mute, height=8),
            nav(first=True),
            state=Settings.mutes,
            getter=mutes_getter,
        ),
        getter=common_getter,
    )
