"""The real Bot against the fake Bot API: the fake is as strict as Telegram (so the console's
care is tested), long texts are split or sent as a file, identical dialog edits are not sent,
files download through getFile."""

from __future__ import annotations

import pytest
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import Chat, InlineKeyboardButton, InlineKeyboardMarkup
from aiogram_dialog.api.entities import NewMessage, OldMessage
from aiogram_dialog.api.protocols import MessageNotModified
from pydantic import SecretStr

from bot.main import build_bot
from bot.messages import ConsoleMessageManager, send_long
from core.config import TelegramSettings
from tests.fakes.telegram import TOKEN, FakeTelegram

CHAT = 777


@pytest.fixture
async def tg():
    async with FakeTelegram() as fake:
        bot = build_bot(TelegramSettings(bot_token=SecretStr(TOKEN), api_base_url=fake.base_url, chat_interval_s=0))
        yield fake, bot
        await bot.session.close()


def markup(data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="b", callback_data=data)]])


async def test_the_fake_refuses_what_telegram_refuses(tg):
    fake, bot = tg
    sent = await bot.send_message(CHAT, "hello", reply_markup=markup("a"))
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("hello", chat_id=CHAT, message_id=sent.message_id, reply_markup=markup("a"))
    await bot.edit_message_text("hello", chat_id=CHAT, message_id=sent.message_id, reply_markup=markup("b"))
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(CHAT, "x", reply_markup=markup("y" * 65))
    with pytest.raises(TelegramBadRequest, match="too long"):
        await bot.send_message(CHAT, "z" * 4097)
    with pytest.raises(TelegramBadRequest, match="to edit not found"):
        await bot.edit_message_text("new", chat_id=CHAT, message_id=99999)
    assert await bot.delete_message(CHAT, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="to delete not found"):
        await bot.delete_message(CHAT, sent.message_id)
    assert (await bot.get_me()).username == "kommo_agent_test_bot"
    assert await bot.send_chat_action(CHAT, "typing")


async def test_long_texts_are_split_or_sent_as_a_file(tg):
    fake, bot = tg
    paragraph = "\n".join(["word " * 150] * 10)  # ~7,500 characters
    await send_long(bot, CHAT, paragraph)
    assert [len(c.params["text"]) <= 4096 for c in fake.calls_of("sendMessage")] == [True, True]
    await send_long(bot, CHAT, "line\n" * 5000, file_name="report.txt", caption="report")
    [doc] = fake.calls_of("sendDocument")
    assert doc.params["document"]["filename"] == "report.txt"
    assert doc.params["document"]["content"].decode() == "line\n" * 5000


async def test_identical_dialog_edits_are_not_sent(tg):
    fake, bot = tg
    manager = ConsoleMessageManager()
    chat = Chat(id=CHAT, type="private")
    first = await manager.send_message(bot, NewMessage(chat=chat, text="menu", reply_markup=markup("a")))
    old = OldMessage(chat=chat, message_id=first.message_id, media_id=None, media_uniq_id=None, text="menu")
    with pytest.raises(MessageNotModified):
        await manager.edit_message_safe(bot, NewMessage(chat=chat, text="menu", reply_markup=markup("a")), old)
    assert not fake.calls_of("editMessageText")
    await manager.edit_message_safe(bot, NewMessage(chat=chat, text="menu", reply_markup=markup("b")), old)
    assert len(fake.calls_of("editMessageText")) == 1


async def test_files_download_through_get_file(tg):
    fake, bot = tg
    fake.add_file("F1", b"instructions", "documents/i.txt")
    file = await bot.get_file("F1")
    assert (await bot.download_file(file.file_path)).read() == b"instructions"
