"""Showing things in Telegram within its limits: texts over 4096 characters are split on line
breaks (or sent as a .txt file when they would take too many messages), and dialog edits that
would change nothing are not sent at all."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import BufferedInputFile, Message
from aiogram_dialog.api.entities import NewMessage, OldMessage
from aiogram_dialog.api.protocols import MessageNotModified
from aiogram_dialog.manager.message_manager import MessageManager
from cachetools import LRUCache

MAX_TEXT = 4096
MAX_PARTS = 3


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Pieces of at most `limit` characters, cut at a line break (else a space) when possible."""
    parts = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        if cut < limit // 2:
            cut = text.rfind(" ", 0, limit)
        if cut < limit // 2:
            cut = limit
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip("\n ")
    return [*parts, text] if text else parts


async def send_long(bot: Bot, chat_id: int, text: str, *, file_name: str = "message.txt",
                    caption: str | None = None, **kwargs) -> list[Message]:
    parts = split_text(text)
    if len(parts) > MAX_PARTS:
        doc = BufferedInputFile(text.encode("utf-8"), filename=file_name)
        return [await bot.send_document(chat_id, doc, caption=caption, **kwargs)]
    return [await bot.send_message(chat_id, part, **(kwargs if i == len(parts) - 1 else {}))
            for i, part in enumerate(parts)]


def _fingerprint(message: NewMessage) -> tuple:
    markup = message.reply_markup.model_dump_json(exclude_none=True) if message.reply_markup else ""
    media = message.media.file_id if message.media and message.media.file_id else None
    return message.text, markup, media


class ConsoleMessageManager(MessageManager):
    """aiogram-dialog's message manager, minus edits that change nothing: it cannot compare
    keyboards itself, so it would send them and get Telegram's 400 "message is not modified".
    What each message last showed is remembered per process (a restart costs one such 400,
    which the base class handles)."""

    def __init__(self, remembered: int = 20_000) -> None:
        self._shown: LRUCache = LRUCache(maxsize=remembered)

    async def edit_message_safe(self, bot: Bot, new_message: NewMessage, old_message: OldMessage) -> Message:
        key, fingerprint = (old_message.chat.id, old_message.message_id), _fingerprint(new_message)
        if self._shown.get(key) == fingerprint:
            raise MessageNotModified("the message already shows this")
        sent = await super().edit_message_safe(bot, new_message, old_message)
        self._shown[(sent.chat.id, sent.message_id)] = fingerprint
        return sent

    async def send_message(self, bot: Bot, new_message: NewMessage) -> Message:
        sent = await super().send_message(bot, new_message)
        self._shown[(sent.chat.id, sent.message_id)] = _fingerprint(new_message)
        return sent
