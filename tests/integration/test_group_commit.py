"""Group commit against nx-27017 and the real broker: bounded commits, a few in flight at once."""

from __future__ import annotations

import asyncio

import pytest

from core.ids import new_id
from core.kommo.intake.group_commit import GroupCommitter
from core.models.events import EventStatus, WebhookEvent
from tests.fixtures.kommo import inbound_queue_length


class RecordingEvents:
    """The real repository, recording each insert's size and how many ran at once."""

    def __init__(self, events, fail_first: int = 0) -> None:
        self.events = events
        self.sizes: list[int] = []
        self.running = self.peak = 0
        self.fail_first = fail_first

    async def insert_new(self, docs):
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            self.sizes.append(len(docs))
            if self.fail_first:
                self.fail_first -= 1
                raise ConnectionError("database unavailable")
            await asyncio.sleep(0.005)  # a commit that takes a while, so others could overlap it
            return await self.events.insert_new(docs)
        finally:
            self.running -= 1

    def __getattr__(self, name):
        return getattr(self.events, name)


def event(org_id: str, key: str) -> WebhookEvent:
    return WebhookEvent(_id=new_id("evt"), org_id=org_id, source="kommo", kind="message.add", dedupe_key=key,
                        raw_body="x", content_type="application/x-www-form-urlencoded")


async def test_commits_are_bounded_whole_requests_and_overlap(storage, celery_queue, redis_client):
    org = await storage.orgs.create("A")
    events = RecordingEvents(storage.events)
    committer = GroupCommitter(events, celery_queue, max_batch=8, max_inflight=2)
    requests = [[event(org.id, f"m:{i}:{j}") for j in range(1 + i % 3)] for i in range(40)]  # 1-3 events each
    requests.append([event(org.id, "m:0:0")])  # Kommo's retry of the first one
    results = await asyncio.gather(*(committer.submit(r) for r in requests))
    await committer.drain()
    total = sum(len(r) for r in requests)
    assert [all(flags) for flags in results[:-1]] == [True] * 40 and results[-1] == [False]
    assert sum(events.sizes) == total
    assert max(events.sizes) <= 8 + 2  # a request is never split, so a commit may end past the bound
    assert events.peak == 2  # two commits were written at once, never more
    assert await storage.events.count(org.id) == total - 1
    assert await inbound_queue_length(redis_client, org.id) == total - 1
    stored = await storage.events.list(org.id, {}, limit=200)
    assert {e.status for e in stored} == {EventStatus.QUEUED}


async def test_a_failed_commit_fails_only_its_requests(storage, celery_queue, redis_client):
    """The first commit fails, then it is retried request by request: the first two fail again
    (alone), the other two of that commit and every later commit are stored."""
    org = await storage.orgs.create("A")
    events = RecordingEvents(storage.events, fail_first=3)
    committer = GroupCommitter(events, celery_queue, max_batch=4, max_inflight=1)
    results = await asyncio.gather(*(committer.submit([event(org.id, f"m:{i}")]) for i in range(12)),
                                   return_exceptions=True)
    await committer.drain()
    failed = [r for r in results if isinstance(r, Exception)]
    assert events.sizes[:5] == [4, 1, 1, 1, 1]
    assert len(failed) == 2 and all(isinstance(r, ConnectionError) for r in failed)
    assert await storage.events.count(org.id) == 10  # the others were stored and enqueued
    assert await inbound_queue_length(redis_client, org.id) == 10
    retry = await committer.submit([event(org.id, "m:0")])  # Kommo retries a failed one: it is new
    assert retry == [True] and await storage.events.count(org.id) == 11


@pytest.mark.parametrize("max_batch", [1, 3])
async def test_a_lone_request_is_committed_at_once(storage, celery_queue, max_batch):
    org = await storage.orgs.create("A")
    committer = GroupCommitter(RecordingEvents(storage.events), celery_queue, max_batch=max_batch)
    assert await asyncio.wait_for(committer.submit([event(org.id, "solo")]), 2) == [True]
