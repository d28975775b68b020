"""`KommoGateway` over core/kommo: the engine's view of Kommo (re-read leads, journaled actions)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from core import metrics
from core.conversations.errors import ReplyWithheld
from core.kommo.actions.lead_actions import KommoActions
from core.kommo.errors import KommoNotConnected, KommoNotFound, KommoValidationError
from core.kommo.http.api import KommoApi
from core.models.agent import DeliveryMode
from core.models.events import ActionRecord, ActionState


def _checked(record: ActionRecord) -> ActionRecord:
    if record.state == ActionState.REFUSED and record.result.get("withheld"):
        raise ReplyWithheld(str(record.result.get("reason") or "no longer wanted"))
    # A refused action is a permanent problem of this turn (bad mode setup, gone stage...):
    # surfaced as a Kommo validation error so the engine hands off with the draft.
    if record.state == ActionState.REFUSED:
        raise KommoValidationError(f"{record.kind} refused: {record.error}")
    return record


class ActionsGateway:
    def __init__(self, actions: KommoActions, api: KommoApi) -> None:
        self.actions = actions
        self.api = api

    async def follow_reported_subdomain(self, org_id: str, subdomain: str) -> bool:
        """See `KommoClient.follow_reported_subdomain`; the usual case (the stored name) costs
        no call, and the account is the one this process remembers for a moment anyway."""
        try:
            account = await self.actions.account(org_id)
        except KommoNotConnected:
            return False
        return await self.api.client.follow_reported_subdomain(account, subdomain)

    async def lead(self, org_id: str, lead_id: int) -> dict[str, Any] | None:
        account = await self.actions.account(org_id)
        try:
            return await self.api.lead(account, lead_id)
        except KommoNotFound:
            return None

    async def send_reply(self, org_id: str, *, lead_id: int | None, text: str, mode: DeliveryMode,
                         idempotency_key: str, context: dict[str, Any],
                         precheck: Callable[[], Awaitable[str | None]] | None = None) -> None:
        _checked(await self.actions.send_reply(org_id, lead_id=lead_id, text=text, mode=mode,
                                               idempotency_key=idempotency_key, context=context, precheck=precheck))
        metrics.REPLIES.labels(metrics.bounded(mode.value)).inc()

    async def release_salesbot(self, org_id: str, *, lead_id: int | None, return_url: str, status: str,
                               idempotency_key: str) -> None:
        _checked(await self.actions.release_salesbot(org_id, lead_id=lead_id, return_url=return_url, status=status,
                                                     idempotency_key=idempotency_key))

    async def move_lead(self, org_id: str, *, lead_id: int, pipeline_id: int, status_id: int,
                        idempotency_key: str) -> None:
        _checked(await self.actions.move_lead(org_id, lead_id, pipeline_id, status_id, idempotency_key))

    async def create_task(self, org_id: str, *, lead_id: int, text: str, deadline: datetime,
                          responsible_user_id: int | None, idempotency_key: str) -> None:
        _checked(await self.actions.create_task(org_id, lead_id, text, responsible_user_id, deadline,
                                                idempotency_key))

    async def add_note(self, org_id: str, *, lead_id: int, text: str, idempotency_key: str) -> None:
        _checked(await self.actions.add_note(org_id, lead_id, text, idempotency_key))

    async def update_lead_field(self, org_id: str, *, lead_id: int, field_id: int, value: Any,
                                enum_id: int | None, idempotency_key: str,
                                allowed_field_ids: list[int] | None = None) -> None:
        _checked(await self.actions.update_lead_field(org_id, lead_id, field_id, value, idempotency_key,
                                                      enum_id=enum_id, allowed_field_ids=allowed_field_ids))
