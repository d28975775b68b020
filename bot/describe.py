"""Planned Kommo actions in words, for the test chat and approval cards."""

from __future__ import annotations

from typing import Any

from aiogram.utils.i18n import gettext

from bot.i18n import _


def describe_action(action: dict[str, Any]) -> str:
    params = action.get("params") or {}
    kind = action.get("kind")
    if not action.get("valid"):
        return _("testchat.action_refused", kind=gettext(f"action.{kind}") if kind else "?",
                 reason=action.get("refusal_reason") or "")
    if kind == "move_lead_stage":
        return _("testchat.would_move", stage=params.get("stage_name") or params.get("status_id"))
    if kind == "create_task":
        return _("testchat.would_task", text=params.get("text", ""), due=str(params.get("due_at", ""))[:16])
    if kind == "update_lead_field":
        return _("testchat.would_field", field=params.get("field_name") or params.get("field_id"),
                 value=params.get("value"))
    if kind == "handoff_to_human":
        return _("testchat.would_handoff", reason=params.get("reason") or "")
    return str(kind)
