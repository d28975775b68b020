"""Group commit for webhook intake: concurrent requests share one insert and one enqueue.

nx-27017 takes ~2.3k `insert_one`/s but several thousand docs/s through `insert_many`, so each
request parks its events here; a flusher writes what has arrived with ONE `insert_many`,
enqueues the new ones with ONE `TaskQueue.process_events` call, and only then answers those
requests. A request is acknowledged only after its events are durably stored and enqueued.

A few commits are in flight at once (`max_inflight`), each of at most `max_batch` events. With
a single one, the web process and the database took turns: every waiting request landed in the
same commit, so the requests' answers, and then their clients' next requests, arrived as one
lump, the web process parsed that lump while the database sat idle and then sat idle itself
while the database wrote it. Smaller commits in flight together keep both busy more of the
time: while the database writes one, the web process answers another and parses the next
(bench/webhook_intake.py, alternating runs: 2.3-2.8k req/s with one commit of everything,
2.4-3.3k with two of at most 16 events; at 128 connections both ~2.7k).
"""

from __future__ import annotations

import asyncio

import structlog
from bson.errors import InvalidDocument
from pymongo.errors import BulkWriteError, DocumentTooLarge

from core.kommo.errors import InvalidWebhook
from core.models.events import EventStatus, WebhookEvent
from core.ports import TaskQueue
from core.storage.repositories.events import WebhookEventRepository

log = structlog.get_logger("kommo.intake")
# What a document itself can make a write fail with (rather than the database being away).
DOCUMENT_ERRORS = (InvalidDocument, OverflowError, DocumentTooLarge, BulkWriteError, ValueError, TypeError)
Batch = list[tuple[list[WebhookEvent], asyncio.Future]]


class GroupCommitter:
    def __init__(self, events: WebhookEventRepository, queue: TaskQueue, *,
                 max_batch: int = 16, max_delay_s: float = 0.0, max_inflight: int = 2) -> None:
        self.events = events
        self.queue = queue
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self._slots = asyncio.Semaphore(max_inflight)
        self._pending: list[tuple[list[WebhookEvent], asyncio.Future]] = []
        self._size = 0
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self.batches = 0  # observability: how many commits served how many requests
        self.enqueue_failures = 0

    async def submit(self, docs: list[WebhookEvent]) -> list[bool]:
        """Store (and enqueue the RECEIVED ones); returns per doc whether it was new."""
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((docs, fut))
        self._size += len(docs)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())
        elif self._size >= self.max_batch:
            self._wake.set()
        # Not shielded: a request whose client went away cancels only its own future; its events
        # are still committed with the batch (and a retry of the webhook is then a duplicate).
        return await fut

    async def _flush_loop(self) -> None:
        while self._pending:
            if self.max_delay_s and self._size < self.max_batch:
                try:  # linger briefly so a burst lands in one commit
                    await asyncio.wait_for(self._wake.wait(), self.max_delay_s)
                except TimeoutError:
                    pass
            self._wake.clear()
            await self._slots.acquire()  # while every slot is busy, the pending requests pile up
            batch, self._pending = self._take(self._pending)
            self._size -= sum(len(group) for group, _ in batch)
            self._background(self._commit(batch))

    def _take(self, pending: list) -> tuple[list, list]:
        """Whole requests, oldest first, up to `max_batch` events (at least one request)."""
        size = 0
        for i, (group, _) in enumerate(pending):
            size += len(group)
            if size >= self.max_batch:
                return pending[:i + 1], pending[i + 1:]
        return pending, []

    async def _commit(self, batch: Batch) -> None:
        try:
            stored, new = await self._insert(batch)
        finally:
            self._slots.release()  # the next commit may start while this one is published
        if stored:
            await self._publish(stored, new)

    async def _insert(self, batch: Batch) -> tuple[Batch, list[WebhookEvent]]:
        """The requests whose events are stored, and the new events among them."""
        docs = [d for group, _ in batch for d in group]
        self.batches += 1
        # Events we enqueue are written as QUEUED right away: a separate status update after
        # the publish cost nx-27017 as much as the insert itself (it rewrites each document).
        # RECEIVED and QUEUED mean the same to the worker's claim and to the recovery sweep (both
        # pending), so a crash between insert and publish still loses nothing; a failed publish
        # puts them back to RECEIVED below.
        for d in docs:
            if d.status == EventStatus.RECEIVED:
                d.status = EventStatus.QUEUED
        try:
            return batch, await self.events.insert_new(docs)
        except Exception as exc:  # noqa: BLE001 - every waiting request must get an answer
            if len(batch) == 1:
                self._fail(batch[0][1], exc)
                return [], []
            log.warning("webhook batch insert failed; committing its requests one by one",
                        error=str(exc)[:300], events=len(docs))
        # One request's documents must never fail its neighbours': each is committed alone
        # (an event the failed batch did write comes back as a duplicate, and the sweep
        # re-enqueues it, since it is stored as QUEUED).
        stored: Batch = []
        new: list[WebhookEvent] = []
        for group, fut in batch:
            try:
                new += await self.events.insert_new(group)
                stored.append((group, fut))
            except Exception as exc:  # noqa: BLE001 - this request alone gets its failure
                self._fail(fut, exc)
        return stored, new

    @staticmethod
    def _fail(fut: asyncio.Future, exc: Exception) -> None:
        if isinstance(exc, DOCUMENT_ERRORS):
            log.warning("webhook events could not be stored", error=str(exc)[:300])
            exc = InvalidWebhook(f"the events could not be stored ({type(exc).__name__})")
        else:
            log.error("webhook insert failed", error=str(exc)[:300])
        if not fut.done():
            fut.set_exception(exc)

    async def _publish(self, batch: Batch, new: list[WebhookEvent]) -> None:
        new_ids = {d.id for d in new}
        refs = [(d.org_id, d.id) for d in new if d.status == EventStatus.QUEUED]
        if refs:
            try:
                await self.queue.process_events(refs)
            except Exception as exc:  # noqa: BLE001 - stored is durable: the sweep re-enqueues
                self.enqueue_failures += 1
                log.error("webhook enqueue failed; left RECEIVED for the sweep", error=str(exc)[:300],
                          events=len(refs))
                self._background(self._mark_received(refs))
        for group, fut in batch:
            if not fut.done():
                fut.set_result([d.id in new_ids for d in group])

    def _background(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _mark_received(self, refs: list[tuple[str, str]]) -> None:
        for org_id, event_id in refs:
            try:
                await self.events.set_status(org_id, event_id, EventStatus.RECEIVED)
            except Exception as exc:  # noqa: BLE001 - only bookkeeping; the sweep tolerates it
                log.warning("marking an unqueued event failed", error=str(exc)[:200])

    async def drain(self) -> None:
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
