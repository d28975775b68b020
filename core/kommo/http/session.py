"""One aiohttp ClientSession per process (per event loop), created lazily on first use.

Kommo calls, token refreshes and Chats API calls share it, so connections are pooled and the
session is never created outside the loop that uses it.
"""

from __future__ import annotations

import asyncio

import aiohttp


class SessionProvider:
    def __init__(self, timeout_s: float = 15.0, limit: int = 100) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.limit = limit
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            async with self._lock:
                if self._session is None or self._session.closed:
                    self._session = aiohttp.ClientSession(
                        timeout=self.timeout,
                        connector=aiohttp.TCPConnector(limit=self.limit),
                        headers={"User-Agent": "kommo-agent/0.1"},
                    )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
