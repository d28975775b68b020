"""Delivering the notifications outbox in Telegram: core's `NotificationDelivery` picks who gets
what, at most once each; this module renders a notification in the recipient's language with
its buttons and says what Telegram answered."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramNetworkError, TelegramRetryAfter
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import CatalogI18n
from core.languages import operator_language
from core.logging import get_logger
from core.models.org import Organization
from core.notifications.delivery import NotificationDelivery, Recipient, SendOutcome
from core.storage import Storage

log = get_logger("bot.notify")
NOTIFICATION_KINDS = ("handoff", "reply_failed", "turn_failed", "event_failed", "agent_tie", "quota_warning",
                      "quota_exceeded",
                      "kommo_connected", "kommo_needs_reauth", "kommo_blocked", "kommo_subdomain_changed",
                      "campaign_finished")
TAKE, GIVE_BACK, MUTE = "nt:t", "nt:b", "nt:m"
SEE_USAGE, PAUSE_AGENT = "nt:u", "nt:p"  # on quota notices


class _Params(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def short(org_or_conv_id: str) -> str:
    """`org_<hex>` -> `<hex>`: ids in callback data without their prefix (64-byte limit)."""
    return org_or_conv_id.split("_", 1)[-1]


def notification_markup(i18n: CatalogI18n, language: str, org: Organization, notification: dict[str, Any],
                        lead_url: str | None) -> InlineKeyboardMarkup:
    params, rows = notification.get("params") or {}, []
    if lead_url:
        rows.append([InlineKeyboardButton(text=i18n.gettext("notify.open_lead", locale=language), url=lead_url)])
    conv = params.get("conversation_id")
    if conv and notification["kind"] in ("handoff", "reply_failed", "turn_failed"):
        rows.append([
            InlineKeyboardButton(text=i18n.gettext("notify.take", locale=language),
                                 callback_data=f"{TAKE}:{short(org.id)}:{conv}"),
            InlineKeyboardButton(text=i18n.gettext("notify.give_back", locale=language),
                                 callback_data=f"{GIVE_BACK}:{short(org.id)}:{conv}"),
        ])
    if notification["kind"] in ("quota_warning", "quota_exceeded"):
        row = [InlineKeyboardButton(text=i18n.gettext("notify.see_usage", locale=language),
                                    callback_data=f"{SEE_USAGE}:{short(org.id)}")]
        agent_id = params.get("agent_id")
        if agent_id and len(f"{PAUSE_AGENT}:{short(org.id)}:{agent_id}") <= 64:
            row.append(InlineKeyboardButton(text=i18n.gettext("notify.pause_agent", locale=language),
                                            callback_data=f"{PAUSE_AGENT}:{short(org.id)}:{agent_id}"))
        rows.append(row)
    rows.append([InlineKeyboardButton(text=i18n.gettext("notify.mute", locale=language),
                                      callback_data=f"{MUTE}:{short(org.id)}:{notification['kind']}")])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def notification_text(i18n: CatalogI18n, language: str, org: Organization, notification: dict[str, Any]) -> str:
    kind = notification["kind"]
    msgid = f"notify.{kind}" if kind in NOTIFICATION_KINDS else "notify.other"
    params = _Params({k: v for k, v in (notification.get("params") or {}).items() if not isinstance(v, dict | list)})
    if "reason" in params:
        reason = i18n.gettext(f"reason.{params['reason']}", locale=language)
        params["reason"] = params["reason"] if reason.startswith("reason.") else reason
    if "limit" in params:
        limit = i18n.gettext(f"limit.{params['limit']}", locale=language)
        params["limit"] = params["limit"] if limit.startswith("limit.") else limit
    body = i18n.gettext(msgid, locale=language).format_map(params | {"kind": kind})
    return f"🏢 {org.name}\n{body}"[:4096]


class TelegramSender:
    """`NotificationSender` over the real Bot."""

    def __init__(self, bot: Bot, i18n: CatalogI18n, storage: Storage) -> None:
        self.bot, self.i18n, self.storage = bot, i18n, storage

    async def _lead_url(self, org_id: str, lead_id: Any) -> str | None:
        if not lead_id:
            return None
        account = await self.storage.kommo_accounts.for_org(org_id)
        return f"https://{account.host}/leads/detail/{int(lead_id)}" if account else None

    async def send(self, org: Organization, recipient: Recipient, notification: dict[str, Any]) -> SendOutcome:
        profile = recipient.profile
        language = profile.language or operator_language(profile.telegram_language or org.language)
        params = notification.get("params") or {}
        text = notification_text(self.i18n, language, org, notification)
        markup = notification_markup(self.i18n, language, org, notification,
                                     await self._lead_url(org.id, params.get("lead_id")))
        try:
            await self.bot.send_message(recipient.operator.telegram_user_id, text, reply_markup=markup)
        except TelegramForbiddenError:
            return SendOutcome.UNREACHABLE
        except TelegramBadRequest as exc:
            if "chat not found" in exc.message.lower():
                return SendOutcome.UNREACHABLE
            log.warning("notification refused", kind=notification["kind"], error=exc.message[:200])
            return SendOutcome.FAILED
        except TelegramRetryAfter:
            return SendOutcome.FAILED  # longer than the session waits: nothing was shown
        except (TimeoutError, TelegramNetworkError):
            return SendOutcome.UNCERTAIN
        return SendOutcome.SENT


async def delivery_loop(delivery: NotificationDelivery, sender: TelegramSender, interval_s: float,
                        stop: asyncio.Event) -> None:
    """Deliver pending notifications every `interval_s` until `stop` is set."""
    while not stop.is_set():
        try:
            report = await delivery.deliver_all(sender)
            if report.sent or report.undeliverable:
                log.info("notifications delivered", sent=report.sent, undeliverable=report.undeliverable)
        except Exception:
            log.exception("notification delivery round failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
