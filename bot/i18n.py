"""The console's gettext: aiogram's `I18n` over the Babel catalogs in `bot/locales/`.

The `.po` files are the source of truth and are compiled in memory when the bot starts, so a
fresh clone needs no build step and a stale `.mo` can never be served. Message ids are
symbolic (`team.invite_created`), so English is a translation like the others and a test can
require every id used in the code to be translated in ru and en.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiogram.types import TelegramObject
from aiogram.utils.i18n import I18n, I18nMiddleware
from aiogram.utils.i18n import gettext as _gettext
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from core.languages import DEFAULT_OPERATOR_LANGUAGE, OPERATOR_LANGUAGES, operator_language

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
DOMAIN = "messages"


def compile_catalog(po_path: Path) -> gettext.GNUTranslations:
    with po_path.open("rb") as fp:
        catalog = read_po(fp)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


class CatalogI18n(I18n):
    """`I18n` that reads `.po` catalogs (compiled in memory) instead of `.mo` files."""

    def find_locales(self) -> dict[str, gettext.GNUTranslations]:
        found = {}
        for language in OPERATOR_LANGUAGES:
            po = self.path / language / "LC_MESSAGES" / f"{self.domain}.po"
            if po.exists():
                found[language] = compile_catalog(po)
        return found

    @contextmanager
    def context(self) -> Iterator[CatalogI18n]:
        # aiogram's `gettext()` reads `I18n.get_current()`; a subclass gets its own context
        # variable (ContextInstanceMixin), so set the base class's one.
        token = I18n.set_current(self)
        try:
            yield self
        finally:
            I18n.reset_current(token)

    def gettext(self, singular: str, plural: str | None = None, n: int = 1, locale: str | None = None) -> str:
        text = super().gettext(singular, plural, n, locale)
        if text == singular and (locale or self.current_locale) != DEFAULT_OPERATOR_LANGUAGE:
            # An id missing in es (allowed outside the main flows): English rather than the id.
            text = super().gettext(singular, plural, n, DEFAULT_OPERATOR_LANGUAGE)
        return text


def build_i18n() -> CatalogI18n:
    return CatalogI18n(path=LOCALES_DIR, default_locale=DEFAULT_OPERATOR_LANGUAGE, domain=DOMAIN)


def _(msgid: str, **params: Any) -> str:
    """Translate in the current user's language and fill `{named}` parameters."""
    text = _gettext(msgid)
    return text.format(**params) if params else text


def user_language(data: dict[str, Any]) -> str:
    """The console language of whoever the update is from: chosen with /lang, else their
    Telegram app's language."""
    profile = data.get("profile")
    if profile is not None and profile.language:
        return profile.language
    user = data.get("event_from_user")
    return operator_language(user.language_code if user else None)


class ConsoleI18nMiddleware(I18nMiddleware):
    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        return user_language(data)
