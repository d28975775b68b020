""""Correct this" under a test-chat answer (and an approval card): opens the teaching dialog for
that question. The id in the button is looked up under the acting user's organisation only, so a
forged id of another organisation's turn finds nothing."""

from __future__ import annotations

import json

from aiogram import F, Router
from aiogram.types import CallbackQuery
from aiogram_dialog import DialogManager, ShowMode

from bot.dialogs.states import Teach
from bot.dialogs.testchat import turn_key
from bot.filters import Can
from bot.i18n import _
from core.team.roles import Permission


async def correct_test_answer(callback: CallbackQuery, dialog_manager: DialogManager, services, org) -> None:
    turn_id = callback.data.split(":", 2)[2]
    raw = await services.redis.get(turn_key(org.id, turn_id))
    if raw is None:
        await callback.answer(_("teach.gone"), show_alert=True)
        return
    turn = json.loads(raw)
    await callback.answer()
    await dialog_manager.start(Teach.answer, data={"agent_id": turn["agent_id"], "question": turn["question"],
                                                   "answer": turn["answer"]}, show_mode=ShowMode.SEND)


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(correct_test_answer, F.data.startswith("fix:t:"), Can(Permission.MANAGE_AGENTS))
    return router
