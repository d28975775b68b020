"""Telegram limits handled once, in the bot's HTTP session (aiogram has no retry of its own):

- a 429 with `retry_after` is waited out and the call repeated (up to `max_wait_s`);
- new messages to one chat are paced (a token bucket: `burst` at once, then one per
  `interval_s`), since Telegram allows about one message a second per chat.
Edits, answers to button presses and chat actions are not paced: they create no message.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType

from core.logging import get_logger

log = get_logger("bot.session")
PACED = {"sendMessage", "sendDocument", "sendPhoto", "sendMediaGroup", "sendVoice", "sendVideo", "copyMessage",
         "forwardMessage"}
MAX_RETRIES = 3


class RetryAfterMiddleware(BaseRequestMiddleware):
    def __init__(self, max_wait_s: float = 60.0) -> None:
        self.max_wait_s = max_wait_s

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Any,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        for attempt in range(1, MAX_RETRIES + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if attempt == MAX_RETRIES or exc.retry_after > self.max_wait_s:
                    raise
                log.warning("telegram flood control, waiting", method=method.__api_method__,
                            retry_after=exc.retry_after, attempt=attempt)
                await asyncio.sleep(exc.retry_after)
        raise AssertionError("unreachable")


class ChatPacingMiddleware(BaseRequestMiddleware):
    def __init__(self, interval_s: float = 1.0, burst: int = 3) -> None:
        self.interval_s = interval_s
        self.burst = burst
        self._next_free: dict[Any, float] = {}  # chat id -> when its bucket is full again
        self._locks: dict[Any, asyncio.Lock] = {}

    async def _wait_turn(self, chat_id: Any) -> None:
        if self.interval_s <= 0:
            return
        lock = self._locks.setdefault(chat_id, asyncio.Lock())
        async with lock:
            now = time.monotonic()
            full_at = max(self._next_free.get(chat_id, now), now)
            # The bucket holds `burst` sends; each send pushes "full again" one interval later.
            wait = full_at + self.interval_s - now - self.burst * self.interval_s
            if wait > 0:
                await asyncio.sleep(wait)
            self._next_free[chat_id] = full_at + self.interval_s
            if len(self._next_free) > 10_000:  # forget quiet chats
                cutoff = time.monotonic()
                self._next_free = {k: v for k, v in self._next_free.items() if v > cutoff}
                self._locks = {k: v for k, v in self._locks.items() if k in self._next_free}

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Any,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        if method.__api_method__ in PACED and getattr(method, "chat_id", None) is not None:
            await self._wait_turn(method.chat_id)
        return await make_request(bot, method)
