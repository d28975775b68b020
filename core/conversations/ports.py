"""What the engine needs from Kommo, as a small interface (implemented over core/kommo)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

from core.models.agent import DeliveryMode


class KommoGateway(Protocol):
    async def follow_reported_subdomain(self, org_id: str, subdomain: str) -> bool:
        """A webhook named this subdomain for the account: follow a rename (True if moved)."""

    async def lead(self, org_id: str, lead_id: int) -> dict[str, Any] | None:
        """The lead as Kommo has it now (re-read before acting), or None if it is gone."""

    async def send_reply(self, org_id: str, *, lead_id: int | None, text: str, mode: DeliveryMode,
                         idempotency_key: str, context: dict[str, Any],
                         precheck: Callable[[], Awaitable[str | None]] | None = None) -> None:
        """Journaled; `precheck` runs right before the call and a reason from it withholds the
        reply (`ReplyWithheld`); an unknown outcome Kommo cannot be asked about raises `MaybeSent`."""

    async def release_salesbot(self, org_id: str, *, lead_id: int | None, return_url: str, status: str,
                               idempotency_key: str) -> None:
        """Continue a Salesbot waiting on `return_url` with no reply, so it does not wait forever."""

    async def move_lead(self, org_id: str, *, lead_id: int, pipeline_id: int, status_id: int,
                        idempotency_key: str) -> None: ...

    async def create_task(self, org_id: str, *, lead_id: int, text: str, deadline: datetime,
                          responsible_user_id: int | None, idempotency_key: str) -> None: ...

    async def add_note(self, org_id: str, *, lead_id: int, text: str, idempotency_key: str) -> None: ...

    async def update_lead_field(self, org_id: str, *, lead_id: int, field_id: int, value: Any,
                                enum_id: int | None, idempotency_key: str,
                                allowed_field_ids: list[int] | None = None) -> None: ...


class DraftReview(Protocol):
    """Approval mode (implemented by core/approvals): a planned reply waits for a person."""

    async def wants(self, org_id: str, plan: Any) -> Any:
        """The agent, if this plan's reply must wait for approval; None to carry it out now."""

    async def submit(self, org_id: str, conv: Any, plan: Any, agent: Any, customer_messages: list[str]) -> str:
        """Store the draft for the approvers; the turn's outcome."""
