"""What the engine needs from Kommo, as a small interface (implemented over core/kommo)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from core.models.agent import DeliveryMode


class KommoGateway(Protocol):
    async def follow_reported_subdomain(self, org_id: str, subdomain: str) -> bool:
        """A webhook named this subdomain for the account: follow a rename (True if moved)."""

    async def lead(self, org_id: str, lead_id: int) -> dict[str, Any] | None:
        """The lead as Kommo has it now (re-read before acting), or None if it is gone."""

    async def send_reply(self, org_id: str, *, lead_id: int | None, text: str, mode: DeliveryMode,
                         idempotency_key: str, context: dict[str, Any]) -> None: ...

    async def release_salesbot(self, org_id: str, *, lead_id: int | None, return_url: str, status: str,
                               idempotency_key: str) -> None:
        """Continue a Salesbot waiting on `return_url` with no reply, so it does not wait forever."""

    async def move_lead(self, org_id: str, *, lead_id: int, pipeline_id: int, status_id: int,
                        idempotency_key: str) -> None: ...

    async def create_task(self, org_id: str, *, lead_id: int, text: str, deadline: datetime,
                          responsible_user_id: int | None, idempotency_key: str) -> None: ...

    async def add_note(self, org_id: str, *, lead_id: int, text: str, idempotency_key: str) -> None: ...

    async def update_lead_field(self, org_id: str, *, lead_id: int, field_id: int, value: Any,
                                enum_id: int | None, idempotency_key: str) -> None: ...
