"""One turn per conversation at a time, and a few turns per organisation at a time, across every
worker process (renewable Redis locks: a worker killed mid-turn releases them within `hold_s`)."""

from __future__ import annotations

from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from core.conversations.errors import ConversationBusy, OrganisationBusy
from core.locks import renewable_lock


@asynccontextmanager
async def conversation_lock(redis: aioredis.Redis, org_id: str, conversation_id: str, *,
                            hold_s: float = 20.0, wait_s: float = 10.0):
    async with renewable_lock(redis, f"lock:conv:{org_id}:{conversation_id}", hold_s=hold_s,
                              wait_s=wait_s) as acquired:
        if not acquired:
            raise ConversationBusy("conversation is busy", conversation_id=conversation_id)
        yield


@asynccontextmanager
async def organisation_slot(redis: aioredis.Redis, org_id: str, slots: int, *, hold_s: float = 30.0):
    """One of the organisation's `slots` turn slots, or `OrganisationBusy` at once.

    Kommo paces each account (5 req/s), so a flooded account's turns mostly wait for its own
    rate limit; holding worker threads meanwhile made every other account wait for a free one.
    Capped per organisation, the rest of a flood steps aside (a retry shortly after) and the
    workers stay available to everyone else."""
    for slot in range(slots):
        async with renewable_lock(redis, f"lock:orgslot:{org_id}:{slot}", hold_s=hold_s, wait_s=None) as acquired:
            if acquired:
                yield
                return
    raise OrganisationBusy("this organisation's turn slots are all taken", countdown=1.0)
