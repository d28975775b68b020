"""The languages operators use the product in (console, printed steps), and the one mapping of a
locale tag such as Telegram's `language_code` ("en-US", "pt-BR", "uk") to one of them.

Customer-message language detection is a different thing and lives in `core/ai/language.py`.
"""

from __future__ import annotations

OPERATOR_LANGUAGES = ("ru", "en", "es")
DEFAULT_OPERATOR_LANGUAGE = "en"
# Languages whose speakers usually read Russian better than English (CIS locales).
_READS_RUSSIAN = {"ru", "uk", "be", "kk", "ky", "uz", "tg", "hy", "az", "ka", "tt", "ba"}
_READS_SPANISH = {"es", "ca", "gl", "eu", "pt"}


def operator_language(tag: str | None, default: str = DEFAULT_OPERATOR_LANGUAGE) -> str:
    """`tag` (a BCP 47 locale tag, possibly None) -> one of OPERATOR_LANGUAGES."""
    if not tag:
        return default
    primary = tag.replace("_", "-").split("-")[0].strip().lower()
    if primary in OPERATOR_LANGUAGES:
        return primary
    if primary in _READS_RUSSIAN:
        return "ru"
    if primary in _READS_SPANISH:
        return "es"
    return default
