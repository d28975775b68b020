""""Correct this": the manager's right answer to a test-chat answer or an approval card, stored as
a correction (an FAQ pair in the agent's "Corrections" source) and indexed at once."""

from __future__ import annotations

from typing import Any

from aiogram.types import ContentType, Message
from aiogram_dialog import Dialog, DialogManager, ShowMode, Window
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import Cancel

from bot.dialogs.states import Teach
from bot.dialogs.widgets import Err, T, actor, guarded
from bot.i18n import _
from core.errors import InvalidInput
from core.teaching.service import Corrections


async def teach_getter(dialog_manager: DialogManager, **_kw: Any) -> dict:
    data = dialog_manager.start_data or {}
    return {"question": data.get("question", ""), "answer": data.get("answer", "") or "—",
            "error": dialog_manager.dialog_data.get("error", "")}


@guarded
async def on_answer(message: Message, widget: Any, manager: DialogManager) -> None:
    if not (message.text or "").strip():
        raise InvalidInput("the answer is empty")
    data = manager.start_data or {}
    # From an approval card the org comes with the card (checked against the membership then).
    org_id = data.get("org_id") or actor(manager)[0]
    corrections = Corrections(manager.middleware_data["services"].storage, manager.middleware_data["services"].queue)
    await corrections.add(org_id, data["agent_id"], data["question"], message.text)
    await message.answer(_("teach.saved"))
    manager.show_mode = ShowMode.SEND
    await manager.done()


def teach_dialog() -> Dialog:
    return Dialog(
        Window(
            Err(), T("teach.ask"),
            MessageInput(on_answer, content_types=[ContentType.TEXT]),
            Cancel(T("nav.back"), id="teach_back"),
            state=Teach.answer, getter=teach_getter,
        ),
    )
