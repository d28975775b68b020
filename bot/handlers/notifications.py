"""Buttons on notifications: "I take it", "Give back to the agent", mute this kind. The ids in the
callback data are checked against the user's memberships: a forged org or conversation id
reaches nothing."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery

from bot.i18n import _
from bot.notify import GIVE_BACK, MUTE, NOTIFICATION_KINDS, TAKE
from core.conversations.takeover import give_back, take_over
from core.services import CoreServices
from core.team.service import TeamService


def _ids(data: str) -> tuple[str, str]:
    _, _, org_hex, rest = data.split(":", 3)
    return f"org_{org_hex}", rest


async def take_or_give_back(query: CallbackQuery, team: TeamService, services: CoreServices) -> None:
    org_id, conversation_id = _ids(query.data)
    membership = await team.membership(query.from_user.id, org_id)  # NotAMember for a forged org id
    action = take_over if query.data.startswith(TAKE + ":") else give_back
    await action(services.storage, org_id, membership.operator, conversation_id)
    await query.answer(_("notify.taken" if action is take_over else "notify.given_back"), show_alert=False)


async def mute(query: CallbackQuery, team: TeamService) -> None:
    org_id, kind = _ids(query.data)
    if kind not in NOTIFICATION_KINDS:
        await query.answer()
        return
    await team.set_muted(query.from_user.id, org_id, kind, True)
    await query.answer(_("notify.muted", kind=_("kind." + kind)))


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(take_or_give_back, F.data.startswith(TAKE + ":") | F.data.startswith(GIVE_BACK + ":"))
    router.callback_query.register(mute, F.data.startswith(MUTE + ":"))
    return router
