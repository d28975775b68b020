"""Everything the engine's functions need, passed explicitly (easy to build in a test)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import redis.asyncio as aioredis

from core.ai.answer.runtime import AgentRuntime
from core.clock import utcnow
from core.conversations.ports import DraftReview, KommoGateway
from core.ports import TaskQueue
from core.storage import Storage
from core.usage.metering import UsageMeter
from core.usage.quota import QuotaPolicy, UnlimitedQuota


@dataclass
class EngineDeps:
    storage: Storage
    redis: aioredis.Redis
    queue: TaskQueue
    runtime: AgentRuntime
    kommo: KommoGateway
    quota: QuotaPolicy = field(default_factory=UnlimitedQuota)
    meter: UsageMeter | None = None  # records each finished turn (replies and handoffs plans count)
    debounce_s: float = 4.0
    lock_wait_s: float = 10.0
    max_event_attempts: int = 5  # claims of one event before it is parked as poison
    turns_per_org: int = 0  # turns of one organisation at once across workers (0: no cap)
    # salesbot mode: how long a turn waits for its widget_request before handing off.
    salesbot_wait_s: float = 20.0
    clock: Callable[[], datetime] = utcnow
    review: DraftReview | None = None  # approval mode; None: every plan is carried out at once
