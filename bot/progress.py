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
        task.add_done_callback(self.tasks.discard)
        return task

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
