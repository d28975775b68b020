"""One runner per campaign at a time (a renewable Redis lock), so a redelivered task and a
re-enqueued one do not work the same targets side by side. It only avoids duplicate work:
exactly-once rests on the targets' states and the action journal."""

from __future__ import annotations

from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from core.campaigns.errors import CampaignBusy
from core.locks import renewable_lock

HOLD_S = 30.0


@asynccontextmanager
async def campaign_lock(redis: aioredis.Redis, org_id: str, campaign_id: str, *, hold_s: float = HOLD_S):
    async with renewable_lock(redis, f"lock:campaign:{org_id}:{campaign_id}", hold_s=hold_s,
                              wait_s=None) as acquired:
        if not acquired:
            raise CampaignBusy("another process is running this campaign", campaign_id=campaign_id)
        yield
