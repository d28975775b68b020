"""Shared widgets: translated text, the Back/Cancel row every screen has, and a guard that shows
a domain error inside the window that caused it."""

from __future__ import annotations

import functools
from typing import Any

from aiogram.utils.i18n import gettext
from aiogram_dialog import DialogManager, ShowMode, StartMode
from aiogram_dialog.widgets.kbd import Back, Button, Cancel, Row, ScrollingGroup, Select, SwitchTo
from aiogram_dialog.widgets.text import Format, Text

from bot.dialogs.states import MainMenu
from bot.errors_text import error_text
from core.errors import KommoAgentError
from core.team.roles import require


class T(Text):
    """A catalog message in the user's language, `{names}` filled from the window's data."""

    def __init__(self, msgid: str, when: Any = None) -> None:
        super().__init__(when=when)
        self.msgid = msgid

    async def _render_text(self, data: dict, manager: DialogManager) -> str:
        return gettext(self.msgid).format_map(data)


async def to_main_menu(event: Any, widget: Any, manager: DialogManager) -> None:
    await manager.start(MainMenu.main, mode=StartMode.RESET_STACK)


def nav(first: bool = False) -> Row:
    """Back (the previous screen, or the menu it came from) and Cancel (the main menu)."""
    back = Cancel(T("nav.back"), id="nav_back") if first else Back(T("nav.back"), id="nav_back")
    return Row(back, Button(T("nav.cancel"), id="nav_cancel", on_click=to_main_menu))


def guarded(handler):
    """Wrap an input/click handler: a domain error becomes `dialog_data["error"]` (shown by the
    window through `{error}`) and the window is sent again below the user's message."""

    @functools.wraps(handler)
    async def wrapper(event: Any, widget: Any, manager: DialogManager, *args: Any) -> None:
        manager.dialog_data.pop("error", None)
        try:
            await handler(event, widget, manager, *args)
        except KommoAgentError as exc:
            manager.dialog_data["error"] = "⚠️ " + error_text(exc) + "\n\n"
            manager.show_mode = ShowMode.SEND if hasattr(event, "text") and not hasattr(event, "data") \
                else ShowMode.EDIT
    return wrapper


def error_getter_part(manager: DialogManager) -> dict[str, str]:
    return {"error": manager.dialog_data.get("error", "")}


def actor(manager: DialogManager) -> tuple[str, Any]:
    """(active org id, acting operator) of the update being handled."""
    data = manager.middleware_data
    return data["org"].id, data["operator"]


async def common_getter(dialog_manager: DialogManager, org=None, **_: Any) -> dict[str, Any]:
    """Data every window may show: the active organisation's name and the last error."""
    return {"org_name": org.name if org else "", "error": dialog_manager.dialog_data.get("error", "")}


class Err(Text):
    """The last domain error of this dialog, shown above the window's text."""

    async def _render_text(self, data: dict, manager: DialogManager) -> str:
        return manager.dialog_data.get("error", "").strip()


def nav_to(state: Any) -> Row:
    """Back to a named screen of the same dialog (where "previous" depends on the path taken)."""

    return Row(SwitchTo(T("nav.back"), id="nav_back", state=state),
               Button(T("nav.cancel"), id="nav_cancel", on_click=to_main_menu))


def needs(permission: Any):
    """An `on_click` for buttons that start changes: refuses (PermissionDenied) a role without
    `permission` even when the hidden button's callback data is sent by hand."""

    async def check(event: Any, widget: Any, manager: DialogManager) -> None:
        require(manager.middleware_data.get("operator"), permission)
    return check


def choice(items: str, widget_id: str, on_click: Any) -> Any:
    """Buttons for the `items` list of the window's data: each `{"id", "label"}`, the id in the
    callback data (never the label: Telegram allows 64 bytes)."""

    return Select(Format("{item[label]}"), id=widget_id, item_id_getter=lambda i: i["id"], items=items,
                  on_click=on_click)


def paged(items: str, widget_id: str, on_click: Any, height: int = 6) -> Any:
    """`choice` in pages of `height` rows with ◀ ▶ when the list is longer."""

    return ScrollingGroup(choice(items, widget_id, on_click), id=widget_id + "_scroll", width=1, height=height,
                          hide_on_single_page=True)
