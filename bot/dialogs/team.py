"""/team: members and their roles, single-use invite links, removal with confirmation."""

from __future__ import annotations

from typing import Any

from aiogram.types import CallbackQuery
from aiogram.utils.i18n import gettext
from aiogram_dialog import Dialog, DialogManager, Window
from aiogram_dialog.widgets.kbd import Button, SwitchTo

from bot.dialogs.states import Team
from bot.dialogs.widgets import Err, T, actor, choice, common_getter, guarded, nav, nav_to, needs, paged
from core.models.org import Role
from core.team.roles import ROLE_ORDER, Permission, can, may_grant
from core.team.service import TeamService, invite_payload


async def members_getter(dialog_manager: DialogManager, team: TeamService, org, operator, **_: Any) -> dict:
    members = await team.members(org.id, operator)
    return {"members": [{"id": m.id, "label": f"{m.name or m.telegram_user_id} · {gettext('role.' + m.role)}"
                         + (" ⭐" if m.id == operator.id else "")} for m in members],
            "count": len(members), "can_manage": can(operator.role, Permission.MANAGE_TEAM)}


async def open_member(callback: CallbackQuery, widget: Any, manager: DialogManager, operator_id: str) -> None:
    manager.dialog_data["member_id"] = operator_id
    await manager.switch_to(Team.member)


async def member_getter(dialog_manager: DialogManager, team: TeamService, org, operator, **_: Any) -> dict:
    member = await team.member(org.id, operator, dialog_manager.dialog_data["member_id"])
    manage = can(operator.role, Permission.MANAGE_TEAM) and may_grant(operator, member.role)
    return {"name": member.name or str(member.telegram_user_id), "role": gettext("role." + member.role),
            "can_change": manage, "can_remove": manage or member.id == operator.id,
            "roles": [{"id": r.value, "label": gettext("role." + r.value)} for r in ROLE_ORDER
                      if may_grant(operator, r)]}


@guarded
async def change_role(callback: CallbackQuery, widget: Any, manager: DialogManager, role: str) -> None:
    org_id, operator = actor(manager)
    await manager.middleware_data["team"].change_role(org_id, operator, manager.dialog_data["member_id"], Role(role))
    await callback.answer(gettext("team.role_changed"))
    await manager.switch_to(Team.member)


@guarded
async def remove_member(callback: CallbackQuery, widget: Any, manager: DialogManager) -> None:
    org_id, operator = actor(manager)
    await manager.middleware_data["team"].remove(org_id, operator, manager.dialog_data.pop("member_id"))
    await callback.answer(gettext("team.removed"))
    await manager.switch_to(Team.list)


@guarded
async def create_invite(callback: CallbackQuery, widget: Any, manager: DialogManager, role: str) -> None:
    org_id, operator = actor(manager)
    invite = await manager.middleware_data["team"].create_invite(org_id, operator, Role(role))
    me = await callback.bot.me()
    manager.dialog_data.update(invite_link=f"https://t.me/{me.username}?start={invite_payload(invite)}",
                               invite_role=gettext("role." + role),
                               invite_expires=invite.expires_at.strftime("%Y-%m-%d %H:%M UTC"))
    await manager.switch_to(Team.invite_link)


async def invite_getter(dialog_manager: DialogManager, operator, **_: Any) -> dict:
    return {**dialog_manager.dialog_data,
            "roles": [{"id": r.value, "label": gettext("role." + r.value)} for r in ROLE_ORDER
                      if may_grant(operator, r)]}


def team_dialog() -> Dialog:
    return Dialog(
        Window(
            Err(), T("team.title"),
            paged("members", "mem_sel", open_member),
            SwitchTo(T("team.invite"), id="inv", state=Team.invite_role, when="can_manage",
                     on_click=needs(Permission.MANAGE_TEAM)),
            nav(first=True),
            state=Team.list, getter=members_getter,
        ),
        Window(
            Err(), T("team.member"),
            SwitchTo(T("team.change_role"), id="to_role", state=Team.role, when="can_change"),
            SwitchTo(T("team.remove"), id="to_remove", state=Team.remove, when="can_remove"),
            nav_to(Team.list),
            state=Team.member, getter=member_getter,
        ),
        Window(
            Err(), T("team.choose_role"),
            choice("roles", "role_sel", change_role),
            nav_to(Team.member),
            state=Team.role, getter=member_getter,
        ),
        Window(
            Err(), T("team.remove_confirm"),
            Button(T("team.remove_yes"), id="rm_yes", on_click=remove_member),
            nav_to(Team.member),
            state=Team.remove, getter=member_getter,
        ),
        Window(
            Err(), T("team.invite_choose_role"),
            choice("roles", "inv_role", create_invite),
            nav_to(Team.list),
            state=Team.invite_role, getter=invite_getter,
        ),
        Window(
            T("team.invite_link"),
            nav_to(Team.list),
            state=Team.invite_link, getter=invite_getter,
        ),
        getter=common_getter,
    )
