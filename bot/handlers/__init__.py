"""All routers, in reading order: commands, notification buttons, the dialogs, errors last."""

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
from bot.filters import Can, InOrganisation
from bot.handlers import errors, notifications, start, workflows
from core.team.roles import Permission


def build_root_router() -> Router:
    # Dialog-level permission filters: a stale or forged button of a dialog the role may not
    # use is refused (and explained) before any of its handlers run.
    for dialog in (main_menu, orgs, team_dialog, agents_dialog):
        dialog.callback_query.filter(InOrganisation())
        dialog.message.filter(InOrganisation())
    agent_wizard.callback_query.filter(Can(Permission.MANAGE_AGENTS))
    agent_wizard.message.filter(Can(Permission.MANAGE_AGENTS))
    kommo_dialog.callback_query.filter(Can(Permission.MANAGE_KOMMO))
    kommo_dialog.message.filter(Can(Permission.MANAGE_KOMMO))

    root = Router(name="root")
    root.include_routers(start.router, workflows.router, notifications.router)
    root.include_routers(main_menu, onboarding, orgs, team_dialog, agents_dialog, agent_wizard, kommo_dialog,
                         settings)
    root.include_router(errors.router)
    return root
