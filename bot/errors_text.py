"""Domain error -> the user's message, by the error's stable `code` (core/errors.py and each
area's errors). Unknown codes get the generic text of their base class."""

from __future__ import annotations

from aiogram.utils.i18n import gettext

from core.errors import KommoAgentError

_BY_CODE = {
    "not_found": "error.not_found",
    "already_exists": "error.already_exists",
    "invalid_input": "error.invalid_input",
    "plan_limit": "error.plan_limit",
    "quota_exceeded": "error.quota_exceeded",
    "report_failed": "error.report_failed",
    "permission_denied": "error.permission_denied",
    "no_organisation": "error.no_organisation",
    "not_a_member": "error.not_a_member",
    "service_unavailable": "error.service_unavailable",
    "configuration_error": "error.configuration_error",
    "secret_error": "error.secret_error",
    "invite_invalid": "error.invite_invalid",
    "invite_expired": "error.invite_expired",
    "invite_used": "error.invite_used",
    "last_owner": "error.last_owner",
    "role_not_grantable": "error.role_not_grantable",
    "name_empty": "error.name_empty",
    "persona_empty": "error.persona_empty",
    "instructions_empty": "error.instructions_empty",
    "text_too_long": "error.text_too_long",
    "language_invalid": "error.invalid_input",
    "model_invalid": "error.model_invalid",
    "pipeline_unknown": "error.pipeline_unknown",
    "stage_unknown": "error.stage_unknown",
    "field_unknown": "error.field_unknown",
    "fields_empty": "error.fields_empty",
    "hours_invalid": "error.hours_invalid",
    "timezone_invalid": "error.timezone_invalid",
    "kommo_not_connected": "error.kommo_not_connected",
    "kommo_unavailable": "error.kommo_unavailable",
    "kommo_error": "error.kommo_error",
    "kommo_token_invalid": "error.token_invalid",
    "kommo_address_invalid": "error.kommo_address",
    "kommo_token_rejected": "error.kommo_token_rejected",
    "file_too_large": "error.file_too_large",
    "delivery_bot_missing": "error.delivery_bot_missing",
    "delivery_field_invalid": "error.delivery_field_invalid",
    "delivery_chats_unavailable": "error.delivery_chats_unavailable",
    "delivery_bot_not_found": "error.delivery_bot_not_found",
    "delivery_bot_disabled": "error.delivery_bot_disabled",
    "delivery_field_conflict": "error.delivery_field_conflict",
    "delivery_agent_ambiguous": "error.delivery_agent_ambiguous",
    "delivery_mode_invalid": "error.delivery_mode_invalid",
    "delivery_widget_secret_missing": "error.delivery_widget_secret_missing",
    "delivery_widget_secret_invalid": "error.delivery_widget_secret_invalid",
    "file_not_text": "error.file_not_text",
}


def error_text(exc: KommoAgentError) -> str:
    msgid = _BY_CODE.get(getattr(exc, "code", ""))
    if msgid is None:
        for cls in type(exc).__mro__:
            msgid = _BY_CODE.get(getattr(cls, "code", ""))
            if msgid:
                break
    params = {k: (", ".join(map(str, v)) if isinstance(v, list | tuple) else v) for k, v in exc.params.items()}
    try:
        return gettext(msgid or "error.generic_domain").format(**params)
    except (KeyError, IndexError, ValueError):
        return gettext(msgid or "error.generic_domain")
