"""Send / Edit / Reject on approval cards, and "Correct this" on a card. The organisation in the
button is checked against the presser's memberships and role before anything is claimed; the
claim itself is atomic in core (of two approvers exactly one wins; the other is told who)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery
from aiogram_dialog import DialogManager, ShowMode, StartMode

from bot.approvals import EDIT, FIX, REJECT, SEND, CardBoard
from bot.dialogs.states import ApprovalEdit, Teach
from bot.errors_text import error_text
from bot.i18n import _
from core.approvals.service import ApprovalError
from core.services import CoreServices
from core.team.roles import Permission, require
from core.team.service import TeamService


async def _member(query: CallbackQuery, team: TeamService) -> tuple[str, str, object]:
    _kind, _verb, org_hex, card_id = query.data.split(":", 3)
    org_id = f"org_{org_hex}"
    membership = await team.membership(query.from_user.id, org_id)  # NotAMember for a forged org id
    require(membership.operator, Permission.MANAGE_AGENTS)
    return org_id, card_id, membership.operator


async def decide(query: CallbackQuery, team: TeamService, services: CoreServices, dialog_manager: DialogManager,
                 i18n_instance) -> None:
    org_id, card_id, operator = await _member(query, team)
    decision = {SEND: "send", EDIT: "edit", REJECT: "reject"}[query.data.rsplit(":", 2)[0]]
    name = operator.name or query.from_user.full_name
    board = CardBoard(services.storage, i18n_instance)
    try:
        await services.approvals().decide(org_id, card_id, operator, decision, name)
    except ApprovalError as exc:
        await query.answer(error_text(exc)[:200], show_alert=True)
        await board.refresh_one(query.bot, org_id, card_id)
        return
    await query.answer(_(f"approval.ok_{decision}"))
    await board.refresh_one(query.bot, org_id, card_id)
    if decision == "edit":
        await dialog_manager.start(ApprovalEdit.text, data={"org_id": org_id, "card_id": card_id},
                                   mode=StartMode.NORMAL, show_mode=ShowMode.SEND)


async def correct_card(query: CallbackQuery, team: TeamService, services: CoreServices,
                       dialog_manager: DialogManager) -> None:
    org_id, card_id, _operator = await _member(query, team)
    card = await services.approvals().card(org_id, card_id)
    await query.answer()
    await dialog_manager.start(Teach.answer, data={"org_id": org_id, "agent_id": card["agent_id"],
                                                   "question": " ".join(card.get("customer_messages") or []),
                                                   "answer": card.get("edit_text") or card.get("draft", "")},
                               show_mode=ShowMode.SEND)


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(decide, F.data.startswith(SEND + ":") | F.data.startswith(EDIT + ":")
                                   | F.data.startswith(REJECT + ":"))
    router.callback_query.register(correct_card, F.data.startswith(FIX + ":"))
    return router
