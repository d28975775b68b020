"""The event loop every process runs its async core on: uvloop where it is installed (a
dependency on Linux and macOS), else asyncio's own. Measured on the webhook path and in the
worker, uvloop cuts the loop's own share of the CPU (select, callbacks, transports)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

try:
    import uvloop
except ImportError:  # Windows, or a build without it: asyncio's loop works the same, slower
    uvloop = None

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on `new_event_loop()`."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coro)
