"""Errors router: domain errors become translated, actionable answers; anything else is logged
with its traceback and the manager gets a generic apology, never a stack trace."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent

from bot.texts import t
from core.errors import InvalidInput, KommoAgentError, NotFound, PermissionDenied
from core.logging import get_logger

router = Router(name=__name__)
log = get_logger("bot.errors")

_CODES = {InvalidInput: "error_invalid_input", NotFound: "error_not_found",
          PermissionDenied: "error_permission_denied"}


def _language(event: ErrorEvent) -> str | None:
    user = event.update.event.from_user if hasattr(event.update.event, "from_user") else None
    return user.language_code if user else None


async def _reply(event: ErrorEvent, text: str) -> None:
    message = event.update.message or (event.update.callback_query and event.update.callback_query.message)
    if message is not None:
        await message.answer(text)


@router.error(ExceptionTypeFilter(KommoAgentError))
async def domain_error(event: ErrorEvent) -> None:
    key = next((v for k, v in _CODES.items() if isinstance(event.exception, k)), "error_generic")
    await _reply(event, t(key, _language(event), detail=str(event.exception)))


@router.error()
async def unexpected_error(event: ErrorEvent) -> None:
    log.error("unhandled bot error", exc_info=event.exception)
    await _reply(event, t("error_generic", _language(event)))
