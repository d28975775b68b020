"""/kommo: connection status, connect (long-lived token or OAuth), resync, disconnect."""

from __future__ import annotations

from aiogram_dialog import Dialog, Window

from bot.dialogs.states import Kommo
from bot.dialogs.widgets import T, common_getter, nav

def kommo_dialog() -> Dialog:
    return Dialog(
        Window(T("kommo.not_connected"), nav(first=True), state=Kommo.status),
        getter=common_getter,
    )
