"""Errors router: stale buttons restart the menu politely; domain errors become translated,
actionable answers; anything else is logged with its traceback under an error id, and the
manager gets a short apology with that id, never a stack trace."""

from __future__ import annotations

import secrets

from aiogram import Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent
from aiogram_dialog import DialogManager, ShowMode, StartMode
from aiogram_dialog.api.exceptions import OutdatedIntent, UnknownIntent, UnknownState

from bot.dialogs.states import MainMenu, Onboarding
from bot.errors_text import error_text
from bot.i18n import _
from core.errors import KommoAgentError
from core.logging import get_logger

log = get_logger("bot.errors")


async def _reply(event: ErrorEvent, text: str) -> None:
    query, message = event.update.callback_query, event.update.message
    try:
        if query is not None:
            await query.answer(text[:200], show_alert=True)
        elif message is not None:
            await message.answer(text)
    except TelegramAPIError as exc:  # e.g. the user blocked the bot meanwhile: nobody to tell
        log.warning("could not tell the user about an error", error=exc.message[:200])


async def stale_dialog(event: ErrorEvent, dialog_manager: DialogManager, operator=None) -> None:
    log.info("stale dialog button", error=type(event.exception).__name__)
    if event.update.callback_query is not None:
        await event.update.callback_query.answer(_("error.stale_button"))
    state = MainMenu.main if operator is not None else Onboarding.choose
    await dialog_manager.start(state, mode=StartMode.RESET_STACK, show_mode=ShowMode.SEND)


async def domain_error(event: ErrorEvent) -> None:
    await _reply(event, error_text(event.exception))


async def unexpected_error(event: ErrorEvent) -> None:
    error_id = secrets.token_hex(4)
    log.error("unhandled bot error", error_id=error_id, update_id=event.update.update_id,
              exc_info=event.exception)
    await _reply(event, _("error.unexpected", error_id=error_id))


def build_router() -> Router:
    router = Router(name=__name__)
    router.errors.register(stale_dialog, ExceptionTypeFilter(UnknownIntent, UnknownState, OutdatedIntent))
    router.errors.register(domain_error, ExceptionTypeFilter(KommoAgentError))
    router.errors.register(unexpected_error)
    return router
