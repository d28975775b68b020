"""Approval cards in Telegram: the card each approver gets (customer messages, draft, sources,
planned Kommo actions, Send / Edit / Reject, Correct this), and keeping every copy of a card up
to date with who did what and when (cards changed by anyone, a worker included, are re-rendered
from the store)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.describe import describe_action
from bot.i18n import CatalogI18n
from core.approvals.service import ApprovalService
from core.languages import operator_language
from core.logging import get_logger
from core.storage import Storage

log = get_logger("bot.approvals")
SEND, EDIT, REJECT, FIX = "ap:s", "ap:e", "ap:r", "fix:a"


def short(org_id: str) -> str:
    return org_id.split("_", 1)[-1]


def _at(value: Any) -> str:
    if isinstance(value, str):  # as some stores hand dates back
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(value)
    return value.strftime("%H:%M") if isinstance(value, datetime) else "—"


def card_text(i18n: CatalogI18n, language: str, card: dict[str, Any], org_name: str = "") -> str:
    def t(msgid: str, **params: Any) -> str:
        return i18n.gettext(msgid, locale=language).format(**params)

    with i18n.context(), i18n.use_locale(language):  # describe_action speaks the current locale
        actions = "; ".join(describe_action({**a, "valid": True}) for a in card.get("actions") or [])
    sources = "\n".join(f"• {s.get('title', '')}" + (f" — «{s['quote']}»" if s.get("quote") else "")
                        for s in card.get("sources") or [])
    parts = [t("approval.head", agent=card.get("agent_name", ""), org=org_name),
             t("approval.customer", text="\n".join(card.get("customer_messages") or []) or "—"),
             t("approval.draft", text=card.get("draft") or "—")]
    if sources:
        parts.append(t("approval.sources", items=sources))
    if actions:
        parts.append(t("approval.actions", items=actions))
    status, decision = card.get("status"), card.get("decision") or ""
    by, at = card.get("decided_by") or "", _at(card.get("decided_at"))
    if status == "pending":
        rule = t("approval.rule_send" if card.get("timeout_action") == "send" else "approval.rule_handoff")
        parts.append(t("approval.deadline", at=_at(card.get("deadline")), rule=rule))
    elif decision.startswith("timeout"):
        key = {"sent": "approval.status_timeout_send", "rejected": "approval.status_timeout_handoff"}.get(
            status, "approval.status_timeout_working")
        parts.append(t(key, at=at))
    elif status == "stale":
        parts.append(t("approval.status_stale"))
    elif status == "failed":
        parts.append(t("approval.status_failed", error=card.get("error") or "?"))
    elif status == "sent" and decision == "edit":
        parts.append(t("approval.status_sent_edit", by=by, at=at, text=card.get("edit_text", "")))
    else:
        parts.append(t(f"approval.status_{status}", by=by, at=at))
    return "\n\n".join(parts)[:4096]


def card_markup(i18n: CatalogI18n, language: str, card: dict[str, Any]) -> InlineKeyboardMarkup | None:
    ids = f"{short(card['org_id'])}:{card['_id']}"
    rows = []
    if card.get("status") == "pending":
        rows.append([InlineKeyboardButton(text=i18n.gettext("approval.send", locale=language), callback_data=f"{SEND}:{ids}"),
                     InlineKeyboardButton(text=i18n.gettext("approval.edit", locale=language), callback_data=f"{EDIT}:{ids}"),
                     InlineKeyboardButton(text=i18n.gettext("approval.reject", locale=language),
                                          callback_data=f"{REJECT}:{ids}")])
    rows.append([InlineKeyboardButton(text=i18n.gettext("teach.correct", locale=language), callback_data=f"{FIX}:{ids}")])
    return InlineKeyboardMarkup(inline_keyboard=rows)


class CardBoard:
    """Shows approval cards and keeps their copies current."""

    def __init__(self, storage: Storage, i18n: CatalogI18n) -> None:
        self.storage, self.i18n = storage, i18n
        self.approvals = ApprovalService(storage)

    async def _language(self, chat_id: int, org_language: str) -> str:
        doc = await self.storage.db["console_profiles"].find_one({"_id": f"tg:{chat_id}"}) or {}
        return doc.get("language") or operator_language(doc.get("telegram_language") or org_language)

    async def send(self, bot: Bot, org, chat_id: int, language: str, card_id: str) -> None:
        card = await self.approvals.card(org.id, card_id)
        sent = await bot.send_message(chat_id, card_text(self.i18n, language, card, org.name),
                                      reply_markup=card_markup(self.i18n, language, card))
        await self.approvals.shown(org.id, card_id, chat_id, sent.message_id)

    async def refresh(self, bot: Bot, card: dict[str, Any]) -> None:
        org = await self.storage.orgs.get(card["org_id"])
        for chat, message_id in (card.get("copies") or {}).items():
            language = await self._language(int(chat), org.language if org else "en")
            try:
                await bot.edit_message_text(text=card_text(self.i18n, language, card, org.name if org else ""),
                                            chat_id=int(chat), message_id=int(message_id),
                                            reply_markup=card_markup(self.i18n, language, card))
            except TelegramAPIError as exc:  # deleted by the user, or unchanged: nothing to fix
                log.info("approval card not edited", error=exc.message[:120], card_id=card["_id"])
        await self.approvals.rendered(card["org_id"], card["_id"], card["rev"])

    async def sync(self, bot: Bot) -> int:
        cards = await self.approvals.dirty()
        for card in cards:
            await self.refresh(bot, card)
        return len(cards)

    async def refresh_one(self, bot: Bot, org_id: str, card_id: str) -> None:
        await self.refresh(bot, await self.approvals.card(org_id, card_id))


async def card_loop(board: CardBoard, bot: Bot, interval_s: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await board.sync(bot)
        except Exception:
            log.exception("approval card sync failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
