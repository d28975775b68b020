"""All routers, in reading order: commands, notification buttons, the dialogs, errors last.
Built anew per Dispatcher (a router can be attached once), so a process can restart its bot."""

from __future__ import annotations

from aiogram import Router

from bot.dialogs.agent_wizard import agent_wizard
from bot.dialogs.agents import agents_dialog
from bot.dialogs.kommo import kommo_dialog
from bot.dialogs.menu import main_menu
from bot.dialogs.onboarding import onboarding
from bot.dialogs.orgs import orgs
from bot.dialogs.settings import settings
from bot.dialogs.team import team_dialog
from bot.filters import DialogCan
from bot.handlers import errors, notifications, start, usage, workflows
from core.team.roles import Permission


def build_root_router() -> Router:
    # Dialog-level permission filters: a stale or forged button of a dialog the role may not
    # use is refused (and explained) before any of its handlers run.
    dialogs = {"menu": main_menu(), "onboarding": onboarding(), "orgs": orgs(), "team": team_dialog(),
               "agents": agents_dialog(), "wizard": agent_wizard(), "kommo": kommo_dialog(), "settings": settings()}
    for dialog, permission in ((dialogs["menu"], None), (dialogs["orgs"], None), (dialogs["team"], Permission.VIEW),
                               (dialogs["agents"], Permission.VIEW), (dialogs["wizard"], Permission.MANAGE_AGENTS),
                               (dialogs["kommo"], Permission.MANAGE_KOMMO)):
        dialog_filter = DialogCan(dialog.states_group(), permission)
        dialog.callback_query.filter(dialog_filter)
        dialog.message.filter(dialog_filter)

    root = Router(name="root")
    root.include_routers(start.build_router(), workflows.build_router(), notifications.build_router(),
                        usage.build_router())
    root.include_routers(*dialogs.values())
    root.include_router(errors.build_router())
    return root
