"""/org: the organisations a user belongs to; pick the active one, or found another."""

from __future__ import annotations

from typing import Any

from aiogram.types import CallbackQuery
from aiogram.utils.i18n import gettext
from aiogram_dialog import Dialog, DialogManager, StartMode, Window
from aiogram_dialog.widgets.kbd import SwitchTo

from bot.dialogs.onboarding import new_org_window
from bot.dialogs.states import MainMenu, Orgs
from bot.dialogs.widgets import Err, T, common_getter, guarded, nav, paged
from bot.middlewares import refresh_actor
from core.team.service import TeamService


async def orgs_getter(dialog_manager: DialogManager, team: TeamService, event_from_user, org=None,
                      **_: Any) -> dict[str, Any]:
    items = [{"id": m.org.id, "label": ("✅ " if org and m.org.id == org.id else "") + m.org.name
              + f" · {gettext('role.' + m.operator.role)}"} for m in await team.memberships(event_from_user.id)]
    return {"orgs": items}


@guarded
async def switch_org(callback: CallbackQuery, widget: Any, manager: DialogManager, org_id: str) -> None:
    team: TeamService = manager.middleware_data["team"]
    refresh_actor(manager.middleware_data, await team.switch(callback.from_user.id, org_id))  # NotAMember if not in it
    await manager.start(MainMenu.main, mode=StartMode.RESET_STACK)


def orgs() -> Dialog:
    return Dialog(
        Window(
            Err(),
            T("orgs.title"),
            paged("orgs", "org_sel", switch_org),
            SwitchTo(T("orgs.create"), id="org_new", state=Orgs.new_name),
            nav(first=True),
            state=Orgs.list,
            getter=orgs_getter,
        ),
        new_org_window(),
        getter=common_getter,
    )
