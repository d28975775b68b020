"""User-facing texts of the Telegram console, per language (ru default, en)."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "start": {
        "ru": "Здравствуйте! Это консоль Kommo Agent — виртуального сотрудника для Kommo.\n"
              "Команды: /help — справка.",
        "en": "Hello! This is the Kommo Agent console — a virtual employee for Kommo.\n"
              "Commands: /help — help.",
    },
    "help": {
        "ru": "Kommo Agent отвечает клиентам в Kommo по вашей базе знаний, двигает сделки по этапам "
              "и передаёт диалог менеджеру. Управление агентами, знаниями и подключением Kommo "
              "доступно также из командной строки: kommo-agent --help.",
        "en": "Kommo Agent answers your customers in Kommo from your knowledge base, moves leads "
              "between stages and hands off to a manager. Agents, knowledge and the Kommo "
              "connection can also be managed from the command line: kommo-agent --help.",
    },
    "error_generic": {
        "ru": "Что-то пошло не так. Мы уже разбираемся; попробуйте ещё раз чуть позже.",
        "en": "Something went wrong. We are looking into it; please try again a bit later.",
    },
    "error_invalid_input": {"ru": "Неверные данные: {detail}", "en": "Invalid input: {detail}"},
    "error_not_found": {"ru": "Не найдено: {detail}", "en": "Not found: {detail}"},
    "error_permission_denied": {"ru": "Недостаточно прав.", "en": "You do not have permission to do that."},
}


def pick_language(code: str | None) -> str:
    return "ru" if not code or code.split("-")[0] not in ("en", "es", "pt") else "en"


def t(key: str, language: str | None = None, **params: str) -> str:
    variants = TEXTS[key]
    return variants.get(pick_language(language), variants["ru"]).format(**params)
