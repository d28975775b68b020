"""The main menu: where every workflow starts and every Cancel returns."""

from __future__ import annotations

from typing import Any

from aiogram.utils.i18n import gettext
from aiogram_dialog import Dialog, DialogManager, Window
from aiogram_dialog.widgets.kbd import Row, Start

from bot.dialogs.states import Agents, Campaigns, Knowledge, Kommo, MainMenu, Orgs, Settings, Team, TestChat
from bot.dialogs.widgets import T
from core.team.roles import Permission, can


async def menu_getter(dialog_manager: DialogManager, org=None, operator=None, **_: Any) -> dict[str, Any]:

    return {"org_name": org.name if org else "", "role": gettext(f"role.{operator.role}") if operator else "",
            "can_kommo": bool(operator and can(operator.role, Permission.MANAGE_KOMMO)),
            "can_agents": bool(operator and can(operator.role, Permission.MANAGE_AGENTS))}


def main_menu() -> Dialog:
    return Dialog(
        Window(
            T("menu.title"),
            Row(Start(T("menu.agents"), id="m_agents", state=Agents.list),
                Start(T("menu.team"), id="m_team", state=Team.list)),
            Row(Start(T("menu.knowledge"), id="m_know", state=Knowledge.agent, when="can_agents"),
                Start(T("menu.test"), id="m_test", state=TestChat.agent, when="can_agents")),
            Row(Start(T("menu.campaigns"), id="m_camp", state=Campaigns.list, when="can_agents")),
            Row(Start(T("menu.kommo"), id="m_kommo", state=Kommo.status, when="can_kommo"),
                Start(T("menu.orgs"), id="m_orgs", state=Orgs.list)),
            Row(Start(T("menu.language"), id="m_lang", state=Settings.language),
                Start(T("menu.notifications"), id="m_mutes", state=Settings.mutes)),
            state=MainMenu.main,
            getter=menu_getter,
        ),
    )
