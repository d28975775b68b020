"""Live ingestion progress: one message per upload, edited in place from the source's stored
progress (status, chunks done/total, written by the ingestion task in the worker), at most once
per `interval_s`, always ending in "ready" (chunks, time) or "failed" (the reason)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError

from bot.i18n import CatalogI18n
from core.logging import get_logger
from core.models.knowledge import KnowledgeSource, SourceStatus
from core.storage import Storage

log = get_logger("bot.progress")
BAR_CELLS = 8


def bar(fraction: float) -> str:
    filled = max(0, min(BAR_CELLS, round(fraction * BAR_CELLS)))
    return "▓" * filled + "░" * (BAR_CELLS - filled)


@dataclass
class _Rate:
    """Chunks per second seen since embedding started, for an estimate when the task gives none."""

    started: float | None = None
    first_done: int = 0

    def eta_s(self, done: int, total: int, now: float) -> float | None:
        if self.started is None:
            self.started, self.first_done = now, done
            return None
        elapsed, gained = now - self.started, done - self.first_done
        if elapsed <= 0 or gained <= 0:
            return None
        return (total - done) / (gained / elapsed)


def render(source: KnowledgeSource, i18n: CatalogI18n, locale: str, rate: _Rate, started: float,
           now: float) -> tuple[str, bool]:
    """(text, final?) for the source as stored now."""

    def t(msgid: str, **params) -> str:
        return i18n.gettext(msgid, locale=locale).format(**params)

    title = source.title
    if source.status == SourceStatus.READY:
        return t("knowledge.progress_ready", title=title, chunks=source.chunks_total or source.chunks_done,
                 seconds=max(1, round(now - started))), True
    if source.status == SourceStatus.FAILED:
        return t("knowledge.progress_failed", title=title, reason=source.error or t("knowledge.reason_unknown")), True
    if source.status == SourceStatus.EMBEDDING and source.chunks_total:
        done, total = source.chunks_done, source.chunks_total
        eta = getattr(source, "eta_s", None)  # the ingestion's own estimate, where it stores one
        if eta is None:
            eta = rate.eta_s(done, total, now)
        line = f"{bar(done / total)} {round(100 * done / total)}% · " + t("knowledge.progress_chunks", done=done,
                                                                            total=total)
        if eta is not None:
            line += " · " + t("knowledge.progress_eta", seconds=max(1, round(eta)))
        return f"{title}\n{line}", False
    key = "knowledge.progress_parsing" if source.status == SourceStatus.PARSING else "knowledge.progress_queued"
    return t(key, title=title), False


class ProgressBoard:
    """The running progress messages of this bot process."""

    def __init__(self, storage: Storage, interval_s: float = 2.0, *, poll_s: float = 0.3,
                 timeout_s: float = 3600.0) -> None:
        self.storage, self.interval_s, self.poll_s, self.timeout_s = storage, interval_s, poll_s, timeout_s
        self.tasks: set[asyncio.Task] = set()

    def watch(self, bot: Bot, chat_id: int, message_id: int, org_id: str, source_id: str, i18n: CatalogI18n,
              locale: str, shown: str) -> asyncio.Task:
        task = asyncio.create_task(self._run(bot, chat_id, message_id, org_id, source_id, i18n, locale, shown))
        self.tasks.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("progress watcher failed", exc_info=task.exception())

    def watch_campaign(self, bot: Bot, chat_id: int, message_id: int, org_id: str, campaign_id: str,
                       i18n: CatalogI18n, locale: str) -> asyncio.Task:
        task = asyncio.create_task(self._run_campaign(bot, chat_id, message_id, org_id, campaign_id, i18n, locale))
        task.campaign_id = campaign_id  # type: ignore[attr-defined]
        self.tasks.add(task)
        task.add_done_callback(self._ended)
        return task

    def watching(self, campaign_id: str) -> bool:
        return any(getattr(t, "campaign_id", None) == campaign_id for t in self.tasks)

    async def idle(self) -> None:
        """Until every watched source has ended (tests, shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def _run(self, bot: Bot, chat_id: int, message_id: int, org_id: str, source_id: str, i18n: CatalogI18n,
                   locale: str, shown: str) -> None:
        started = last_edit = time.monotonic()
        rate = _Rate()
        while True:
            source = await self.storage.knowledge.get(org_id, source_id)
            now = time.monotonic()
            if source is None:
                text, final = i18n.gettext("knowledge.progress_gone", locale=locale), True
            elif now - started > self.timeout_s:
                text, final = i18n.gettext("knowledge.progress_still", locale=locale).format(title=source.title), True
            else:
                text, final = render(source, i18n, locale, rate, started, now)
            if text != shown:
                wait = self.interval_s - (time.monotonic() - last_edit)
                if wait > 0 and not final:
                    await asyncio.sleep(min(wait, self.poll_s))
                    continue
                if wait > 0:
                    await asyncio.sleep(wait)  # the last edit keeps the pace too (an end does not change)
                try:
                    await bot.edit_message_text(text=text, chat_id=chat_id, message_id=message_id)
                    shown = text
                except TelegramAPIError as exc:
                    log.warning("progress edit failed", error=exc.message[:200], source_id=source_id)
                last_edit = time.monotonic()
            if final:
                return
            await asyncio.sleep(self.poll_s)

    async def _run_campaign(self, bot: Bot, chat_id: int, message_id: int, org_id: str, campaign_id: str,
                            i18n: CatalogI18n, locale: str) -> None:
        """One message per campaign: progress while it runs or waits paused, then the report."""
        started = last_edit = time.monotonic()  # the message was just sent: its first edit keeps the pace too
        shown = ""
        while True:
            campaign = await self.storage.campaigns.get(org_id, campaign_id)
            if campaign is None:
                return
            final = campaign.status.value in ("done", "cancelled", "failed")
            if final:
                text = await campaign_report(self.storage, campaign, i18n, locale)
            else:
                text = campaign_progress(campaign, i18n, locale)
            if text != shown:
                wait = self.interval_s - (time.monotonic() - last_edit)
                if wait > 0:
                    await asyncio.sleep(wait if final else min(wait, self.poll_s))
                    if not final:
                        continue
                try:
                    await bot.edit_message_text(text=text, chat_id=chat_id, message_id=message_id)
                    shown = text
                except TelegramAPIError as exc:
                    log.warning("campaign progress edit failed", error=exc.message[:200], campaign_id=campaign_id)
                last_edit = time.monotonic()
            if final or time.monotonic() - started > self.timeout_s * 24:
                return
            await asyncio.sleep(self.poll_s)


def campaign_progress(campaign, i18n: CatalogI18n, locale: str) -> str:
    done, total = campaign.sent + campaign.skipped + campaign.failed, campaign.total
    head = i18n.gettext("campaigns.progress_paused" if campaign.status.value == "paused"
                        else "campaigns.progress_running", locale=locale).format(stage=campaign.stage_name)
    line = i18n.gettext("campaigns.progress_line", locale=locale).format(
        bar=bar(done / total if total else 0.0), percent=round(100 * done / total) if total else 0, done=done,
        total=total or "…", sent=campaign.sent, skipped=campaign.skipped, failed=campaign.failed)
    return f"{head}\n{line}"


async def campaign_report(storage: Storage, campaign, i18n: CatalogI18n, locale: str) -> str:
    from core.campaigns.report import build_report  # noqa: PLC0415 - the report is built only at the end

    report = await build_report(storage, campaign)

    def reasons(by_reason: dict[str, int]) -> str:
        return "; ".join(f"{why} — {n}" for why, n in by_reason.items()) or "—"

    return i18n.gettext(f"campaigns.report_{campaign.status.value}", locale=locale).format(
        stage=campaign.stage_name, sent=report["sent"], skipped=report["skipped"], failed=report["failed"],
        skipped_why=reasons(report["skipped_by_reason"]), failed_why=reasons(report["failed_by_reason"]),
        reason=campaign.status_reason or "")
