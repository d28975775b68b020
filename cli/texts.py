"""Operator-facing texts of the CLI in the operator's language (ru, en, es), read from the
console's catalogs (bot/locales), so the shell and Telegram say the same thing."""

from __future__ import annotations

import functools
import gettext
from typing import Any

from core.errors import KommoAgentError

LANGUAGES = ("en", "ru", "es")


@functools.cache
def _catalog(language: str) -> gettext.GNUTranslations:
    from bot.i18n import DOMAIN, LOCALES_DIR, compile_catalog  # noqa: PLC0415 - keeps every command's start fast

    return compile_catalog(LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po")


def text(language: str, msgid: str, **params: Any) -> str:
    """The message in `language` (English where that language lacks it), formatted."""
    found = _catalog(language).gettext(msgid)
    if found == msgid and language != "en":
        found = _catalog("en").gettext(msgid)
    flat = {k: ", ".join(map(str, v)) if isinstance(v, list | tuple) else v for k, v in params.items()}
    try:
        return found.format(**flat)
    except (KeyError, IndexError, ValueError):
        return found


def error_text(language: str, exc: KommoAgentError) -> str | None:
    """A domain error's catalog message by its code, or None when the catalog has none."""
    from bot.errors_text import _BY_CODE  # noqa: PLC0415 - the console's one code -> message table

    msgid = _BY_CODE.get(getattr(exc, "code", ""))
    return text(language, msgid, **exc.params) if msgid else None
