"""Inbound limits of the hook routes: events per account per minute, unknown-token lookups per client.

Kept in the web process (no Redis round trip per webhook): each process counts what it took
in, so with N web processes an account may reach N times the limit, which still bounds a
flood. A refused request costs no database work at all, and each account has its own window,
so one tenant's flood is answered 429 without delaying anyone else.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from core.kommo.errors import InvalidWebhook

WINDOW_S = 60.0
MAX_TRACKED = 10_000  # windows kept at once; the oldest are forgotten (a window lasts a minute anyway)


class WebhookRateLimited(InvalidWebhook):
    """Too many events (or unknown-token tries) in the current minute; `retry_after` seconds."""

    code = "webhook_rate_limited"

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class WindowCounter:
    """Fixed one-minute windows per key, bounded in memory."""

    def __init__(self, limit: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self.refused: dict[str, int] = {}  # per key, since start: what a status page or a test reads

    def _window(self, key: str) -> tuple[float, int]:
        now = self.clock()
        started, used = self._windows.get(key, (now, 0))
        if now - started >= WINDOW_S:
            started, used = now, 0
        return started, used

    def take(self, key: str, amount: int, what: str) -> None:
        """Count `amount` against `key`, or raise `WebhookRateLimited` (counting nothing)."""
        started, used = self._window(key)
        if used + amount > self.limit:
            self.refused[key] = self.refused.get(key, 0) + amount
            retry = max(1.0, WINDOW_S - (self.clock() - started))
            raise WebhookRateLimited(f"{what}: more than {self.limit} per minute", retry_after=round(retry))
        self._windows[key] = (started, used + amount)
        self._windows.move_to_end(key)
        while len(self._windows) > MAX_TRACKED:
            self._windows.popitem(last=False)

    def check(self, key: str, what: str) -> None:
        """Raise when `key` has used its window up, without counting."""
        started, used = self._window(key)
        if used >= self.limit:
            self.refused[key] = self.refused.get(key, 0) + 1
            raise WebhookRateLimited(f"{what}: more than {self.limit} per minute",
                                     retry_after=round(max(1.0, WINDOW_S - (self.clock() - started))))


class IntakeLimits:
    def __init__(self, *, events_per_minute: int, unknown_tokens_per_minute: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.events = WindowCounter(events_per_minute, clock=clock)
        self.unknown_tokens = WindowCounter(unknown_tokens_per_minute, clock=clock)
