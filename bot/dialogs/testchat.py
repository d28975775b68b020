"""/test: chat with an agent as a customer would, in dry run. Each message goes through the real
agent runtime (in a worker, where the knowledge lives); the answer shows its sources, tokens and
cost and what the agent would do in Kommo, with "Correct this" under it. The conversation keeps
its memory until /stop or Leave."""

from __future__ import annotations

import json
from typing import Any

from aiogram.types import CallbackQuery, ContentType, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.chat_action import ChatActionSender
from aiogram_dialog import Dialog, DialogManager, ShowMode, Window
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import Button, SwitchTo

from bot.describe import describe_action
from bot.dialogs.states import TestChat
from bot.dialogs.widgets import Err, T, actor, common_getter, guarded, nav, nav_to, paged, to_main_menu
from bot.i18n import _
from bot.messages import send_long
from core.errors import InvalidInput
from core.testchat.service import TestAnswer, TestChatService

TURN_TTL_S = 24 * 3600


def user_key(user_id: int) -> str:
    return f"tg{user_id}"


def turn_key(org_id: str, turn_id: str) -> str:
    return f"console:turn:{org_id}:{turn_id}"


async def agents_getter(dialog_manager: DialogManager, agents, org, operator, **_kw: Any) -> dict:
    found = await agents.list(org.id, operator)
    return {"agents": [{"id": a.id, "label": ("🟢 " if a.enabled else "⚪ ") + a.name} for a in found],
            "count": len(found)}


@guarded
async def pick_agent(callback: CallbackQuery, widget: Any, manager: DialogManager, agent_id: str) -> None:
    org_id, _operator = actor(manager)
    chat: TestChatService = manager.middleware_data["test_chat"]
    await chat.open(org_id, user_key(callback.from_user.id), agent_id)  # NotFound for another org's id
    await manager.switch_to(TestChat.chat)


async def chat_getter(dialog_manager: DialogManager, test_chat: TestChatService, org, event_from_user,
                      **_kw: Any) -> dict:
    session = await test_chat.session(org.id, user_key(event_from_user.id))
    if session is None:
        return {"agent_name": "—", "stage_line": ""}
    stage = _("testchat.stage_line", stage=session.stage_name) if session.stage_name else ""
    return {"agent_name": session.agent_name, "stage_line": stage}


async def stages_getter(dialog_manager: DialogManager, test_chat: TestChatService, org, **_kw: Any) -> dict:
    stages = await test_chat.stages(org.id)
    return {"stages": [{"id": f"{p}.{s}", "label": name} for p, s, name in stages], "no_stages": not stages}


@guarded
async def pick_stage(callback: CallbackQuery, widget: Any, manager: DialogManager, item_id: str) -> None:
    org_id, _operator = actor(manager)
    try:
        pipeline_id, status_id = (int(x) for x in item_id.split(".", 1))
    except ValueError:
        raise InvalidInput("not a stage") from None
    chat: TestChatService = manager.middleware_data["test_chat"]
    await chat.pretend_stage(org_id, user_key(callback.from_user.id), pipeline_id, status_id)
    await manager.switch_to(TestChat.chat)


@guarded
async def no_stage(callback: CallbackQuery, widget: Any, manager: DialogManager) -> None:
    org_id, _operator = actor(manager)
    await manager.middleware_data["test_chat"].pretend_stage(org_id, user_key(callback.from_user.id), None, None)
    await manager.switch_to(TestChat.chat)


def render_answer(answer: TestAnswer) -> str:
    lines = [answer.reply_text or _("testchat.no_reply"), ""]
    if answer.sources:
        lines.append(_("testchat.sources"))
        lines += [f"• {s['title']}" + (f" — «{s['quote']}»" if s.get("quote") else "") for s in answer.sources]
    else:
        lines.append(_("testchat.no_sources"))
    actions = [describe_action(a) for a in answer.actions]
    lines.append(_("testchat.in_kommo", actions="; ".join(actions)) if actions else _("testchat.in_kommo_nothing"))
    lines.append(_("testchat.usage", prompt=answer.prompt_tokens, completion=answer.completion_tokens,
                   cost=f"{answer.cost_usd:.4f}"))
    return "\n".join(lines)


def correct_button(turn_id: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(
        text=_("teach.correct"), callback_data=f"fix:t:{turn_id}")]])


@guarded
async def on_message(message: Message, widget: Any, manager: DialogManager) -> None:
    org_id, _operator = actor(manager)
    chat: TestChatService = manager.middleware_data["test_chat"]
    manager.show_mode = ShowMode.NO_UPDATE  # the chat's header stays; answers come below it
    async with ChatActionSender.typing(bot=message.bot, chat_id=message.chat.id, interval=4.0):
        answer = await chat.ask(org_id, user_key(message.from_user.id), message.text or "")
    # What "Correct this" needs later: the question, the answer and whose agent it was.
    redis = manager.middleware_data["services"].redis
    await redis.set(turn_key(org_id, answer.turn_id), json.dumps({
        "agent_id": answer.agent_id, "question": answer.question, "answer": answer.reply_text}), ex=TURN_TTL_S)
    await send_long(message.bot, message.chat.id, render_answer(answer), reply_markup=correct_button(answer.turn_id))


async def on_not_text(message: Message, widget: Any, manager: DialogManager) -> None:
    manager.show_mode = ShowMode.NO_UPDATE
    await message.answer(_("testchat.text_only"))


async def leave(event: Any, widget: Any, manager: DialogManager) -> None:
    org_id, _operator = actor(manager)
    await manager.middleware_data["test_chat"].leave(org_id, user_key(event.from_user.id))
    await to_main_menu(event, widget, manager)


def testchat_dialog() -> Dialog:
    return Dialog(
        Window(
            Err(), T("testchat.pick_agent"),
            paged("agents", "tc_agent", pick_agent),
            nav(first=True),
            state=TestChat.agent, getter=agents_getter,
        ),
        Window(
            Err(), T("testchat.header"),
            SwitchTo(T("testchat.pretend_stage"), id="tc_stage", state=TestChat.stage),
            Button(T("testchat.leave"), id="tc_leave", on_click=leave),
            MessageInput(on_message, content_types=[ContentType.TEXT]),
            MessageInput(on_not_text),
            state=TestChat.chat, getter=chat_getter,
        ),
        Window(
            Err(), T("testchat.pick_stage"), T("testchat.no_synced_stages", when="no_stages"),
            paged("stages", "tc_st", pick_stage),
            Button(T("testchat.no_stage"), id="tc_nostage", on_click=no_stage),
            nav_to(TestChat.chat),
            state=TestChat.stage, getter=stages_getter,
        ),
        getter=common_getter,
    )
