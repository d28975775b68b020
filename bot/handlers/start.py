from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from bot.texts import t

router = Router(name=__name__)


@router.message(CommandStart())
async def start(message: Message) -> None:
    await message.answer(t("start", message.from_user and message.from_user.language_code))


@router.message(Command("help"))
async def help_(message: Message) -> None:
    await message.answer(t("help", message.from_user and message.from_user.language_code))
