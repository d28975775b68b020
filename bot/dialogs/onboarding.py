"""First /start of a user in no organisation: found one (and own it), or learn how to join one."""

from __future__ import annotations

from typing import Any

from aiogram.types import Message
from aiogram_dialog import Dialog, DialogManager, StartMode, Window
from aiogram_dialog.widgets.input import TextInput
from aiogram_dialog.widgets.kbd import Back, Cancel, Row, SwitchTo

from bot.dialogs.states import MainMenu, Onboarding, Orgs
from bot.dialogs.widgets import Err, T, common_getter, guarded, nav
from bot.i18n import user_language
from bot.middlewares import refresh_actor
from core.team.service import TeamService


def operator_name(message: Message) -> str:
    user = message.from_user
    return " ".join(filter(None, [user.first_name, user.last_name])) or (user.username or "")


async def found_org(message: Message, widget: Any, manager: DialogManager, name: str) -> None:
    team: TeamService = manager.middleware_data["team"]
    membership = await team.found_org(message.from_user.id, name, operator_name=operator_name(message),
                                      language=user_language(manager.middleware_data))
    refresh_actor(manager.middleware_data, membership)
    await manager.start(MainMenu.main, mode=StartMode.RESET_STACK)


def org_name_window(state, navigation) -> Window:
    return Window(
        Err(),
        T("onboarding.org_name"),
        TextInput(id="org_name", on_success=guarded(found_org)),
        navigation,
        state=state,
    )


def onboarding() -> Dialog:
    return Dialog(
        Window(
            T("onboarding.welcome"),
            SwitchTo(T("onboarding.create"), id="ob_create", state=Onboarding.org_name),
            state=Onboarding.choose,
        ),
        org_name_window(Onboarding.org_name, Row(Back(T("nav.back"), id="nav_back"),
                                                 Cancel(T("nav.cancel"), id="nav_cancel"))),
        getter=common_getter,
    )

# "Create another organisation" from /org reuses the same step.
def new_org_window() -> Window:
    return org_name_window(Orgs.new_name, nav())
