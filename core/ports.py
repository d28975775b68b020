"""Ports core needs from the outside and adapters provide (Celery, Telegram)."""

from __future__ import annotations

from typing import Protocol


class TaskQueue(Protocol):
    """Background work. The Celery implementation lives in `tasks/queue.py`."""

    async def process_events(self, refs: list[tuple[str, str]]) -> None:
        """Enqueue one task per (org_id, webhook event id)."""

    async def index_source(self, org_id: str, source_id: str) -> None: ...

    async def delete_source(self, org_id: str, source_id: str) -> None:
        """Remove a knowledge source with its vectors (where the vector store's owner runs)."""

    async def test_turn(self, org_id: str, request_id: str) -> None:
        """Run a stored test-chat request (core.testchat) where the knowledge area may be opened."""

    async def approval_decided(self, org_id: str, card_id: str) -> None:
        """Carry out an approver's claimed decision (core.approvals) in a worker."""

    async def sync_account(self, org_id: str) -> None: ...

    async def run_campaign(self, org_id: str, campaign_id: str) -> None:
        """Hand a stored campaign to a worker (its batches re-enqueue themselves)."""

    async def backlog(self) -> int:
        """Inbound tasks waiting in the broker (the recovery sweep holds off while work waits)."""

    async def schedule_turn(self, org_id: str, conversation_id: str, trigger_message_id: str | None,
                            countdown: float) -> None:
        """Run a conversation turn after `countdown` seconds (the debounce window)."""

    async def schedule_turns(self, refs: list[tuple[str, str]]) -> None:
        """Run a turn now for each (org_id, conversation id), in this order (recovery)."""
