"""The Celery implementation of `core.ports.TaskQueue` (used by the web app, CLI and bot)."""

from __future__ import annotations

import asyncio

from celery import Celery


class CeleryTaskQueue:
    def __init__(self, app: Celery) -> None:
        self.app = app

    def _send_many(self, name: str, arg_lists: list[tuple], countdown: float | None = None) -> None:
        # One producer connection for the whole batch: intake group-commits many events at once.
        with self.app.producer_or_acquire() as producer:
            for args in arg_lists:
                self.app.send_task(name, args=args, producer=producer, countdown=countdown)

    async def process_events(self, refs: list[tuple[str, str]]) -> None:
        if refs:
            await asyncio.to_thread(self._send_many, "inbound.process_event", list(refs))

    async def index_source(self, org_id: str, source_id: str) -> None:
        await asyncio.to_thread(self._send_many, "ingest.index_source", [(org_id, source_id)])

    async def sync_account(self, org_id: str) -> None:
        await asyncio.to_thread(self._send_many, "kommo.sync_account", [(org_id,)])

    async def schedule_turn(self, org_id: str, conversation_id: str, trigger_message_id: str | None,
                            countdown: float) -> None:
        await asyncio.to_thread(self._send_many, "inbound.run_turn",
                                [(org_id, conversation_id, trigger_message_id)], countdown or None)
