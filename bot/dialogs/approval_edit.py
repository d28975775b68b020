"""Edit on an approval card: the manager's next message is the reply the customer gets."""

from __future__ import annotations

from typing import Any

from aiogram.types import ContentType, Message
from aiogram_dialog import Dialog, DialogManager, ShowMode, Window
from aiogram_dialog.widgets.input import MessageInput

from bot.approvals import CardBoard
from bot.dialogs.states import ApprovalEdit
from bot.dialogs.widgets import Err, T, guarded
from bot.i18n import _
from core.team.service import TeamService


@guarded
async def on_text(message: Message, widget: Any, manager: DialogManager) -> None:
    data, deps = manager.start_data or {}, manager.middleware_data
    team: TeamService = deps["team"]
    membership = await team.membership(message.from_user.id, data["org_id"])
    services = deps["services"]
    await services.approvals().submit_edit(data["org_id"], data["card_id"], membership.operator, message.text or "")
    await CardBoard(services.storage, deps["i18n_instance"]).refresh_one(message.bot, data["org_id"], data["card_id"])
    await message.answer(_("approval.edit_done"))
    manager.show_mode = ShowMode.NO_UPDATE
    await manager.done()


def approval_edit_dialog() -> Dialog:
    return Dialog(Window(Err(), T("approval.edit_ask"), MessageInput(on_text, content_types=[ContentType.TEXT]),
                         state=ApprovalEdit.text))
