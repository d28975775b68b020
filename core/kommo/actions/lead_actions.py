"""`KommoActions`: every side effect the agent runtime and conversation engine may cause in Kommo.

Each method is journaled (see journal.py: idempotency key, exactly-once, audit log in
agent_actions), validates against the synced catalog first (a refused call is recorded REFUSED
and returned, not raised, so a tool loop can tell the model why), and with `dry_run=True`
records PLANNED ("would do") and calls nothing. Kommo failures are recorded, then raised.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.clock import utcnow
from core.config import KommoSettings
from core.kommo.actions.journal import run_journaled
from core.kommo.delivery.replies import ReplySender
from core.kommo.errors import DeliverySetupBroken, KommoNotConnected
from core.kommo.http.api import KommoApi
from core.models.agent import DeliveryMode
from core.models.events import ActionRecord
from core.models.kommo import FieldValueRefused, KommoAccount, check_field_value
from core.storage import Storage

MULTI_VALUE_TYPES = {"multitext", "multiselect"}
# Modes whose reply Kommo cannot be asked about and which a second call would show the customer
# twice: an unknown outcome there is "maybe sent" (an operator checks), never a blind resend. A
# note is found again by its text; a Salesbot `return_url` is single-use (a second continue is
# refused by Kommo), so those may be retried.
NOT_RESENDABLE_MODES = {DeliveryMode.SALESBOT_RUN, DeliveryMode.CHATS_API}


class KommoActions:
    def __init__(self, *, storage: Storage, api: KommoApi, replies: ReplySender, settings: KommoSettings,
                 stale_after_s: float = 120.0) -> None:
        self.storage = storage
        self.api = api
        self.replies = replies
        self.settings = settings
        self.stale_after_s = stale_after_s

    async def account(self, org_id: str) -> KommoAccount:
        account = await self.storage.kommo_accounts.for_org_recent(org_id)
        if account is None:
            raise KommoNotConnected("this organisation has no Kommo connection")
        return account

    def _journal(self, org_id: str, **kw) -> Any:
        kw.setdefault("stale_after_s", self.stale_after_s)
        return run_journaled(self.storage.actions, org_id, **kw)

    async def send_reply(self, org_id: str, *, lead_id: int, text: str, mode: DeliveryMode, idempotency_key: str,
                         context: dict[str, Any] | None = None, dry_run: bool = False,
                         conversation_id: str | None = None, agent_id: str | None = None,
                         precheck=None) -> ActionRecord:
        """Deliver `text` to the customer of `lead_id` through `mode` (context: salesbot
        `return_url`, chats `conversation_id`/`receiver`...). `precheck` runs right before the
        call (see `run_journaled`)."""
        account = await self.account(org_id)
        context = context or {}
        problem = self.replies.setup_problem(account, mode)
        if problem and not dry_run:
            # Not journaled: every reply would be refused alike until the set-up is fixed, and
            # then this one must still be sendable (one alert per set-up, see the engine).
            raise DeliverySetupBroken(problem, what="setup", version=account.delivery_version)
        refuse = None if text.strip() else "empty reply"
        refuse = refuse or self.replies.check(account, mode, context)
        return await self._journal(
            org_id, kind=f"reply.{mode.value}", key=idempotency_key, lead_id=lead_id, dry_run=dry_run,
            refuse=refuse, params={"text": text, "mode": mode.value, "context": context},
            perform=lambda: self.replies.send(account, mode, lead_id, text, context, idempotency_key),
            find_existing=self.replies.finder(account, mode, lead_id, text),
            can_resend=mode not in NOT_RESENDABLE_MODES, precheck=precheck,
            conversation_id=conversation_id, agent_id=agent_id)

    async def release_salesbot(self, org_id: str, *, lead_id: int | None, return_url: str, status: str,
                               idempotency_key: str, conversation_id: str | None = None) -> ActionRecord:
        """Continue a Salesbot that waits on `return_url` without a reply (see ReplySender)."""
        account = await self.account(org_id)
        refuse = self.replies.check(account, DeliveryMode.SALESBOT, {"return_url": return_url})
        return await self._journal(
            org_id, kind="salesbot.release", key=idempotency_key, lead_id=lead_id, refuse=refuse,
            params={"return_url": return_url, "status": status},
            perform=lambda: self.replies.release_salesbot(account, return_url, status),
            conversation_id=conversation_id)

    async def move_lead(self, org_id: str, lead_id: int, pipeline_id: int, status_id: int, idempotency_key: str, *,
                        allowed_stages: list[tuple[int, int]] | None = None, dry_run: bool = False,
                        conversation_id: str | None = None, agent_id: str | None = None) -> ActionRecord:
        account = await self.account(org_id)
        refuse = await self._stage_problem(org_id, pipeline_id, status_id, allowed_stages)
        return await self._journal(
            org_id, kind="move_lead", key=idempotency_key, lead_id=lead_id, dry_run=dry_run, refuse=refuse,
            params={"pipeline_id": pipeline_id, "status_id": status_id}, resend_safe=True,
            perform=lambda: self.api.update_lead(account, lead_id, {"pipeline_id": pipeline_id,
                                                                    "status_id": status_id}),
            conversation_id=conversation_id, agent_id=agent_id)

    async def _stage_problem(self, org_id: str, pipeline_id: int, status_id: int,
                             allowed: list[tuple[int, int]] | None) -> str | None:
        pipeline = await self.storage.kommo_catalog.pipeline(org_id, pipeline_id)
        if pipeline is None or pipeline.gone:
            return f"pipeline {pipeline_id} does not exist in Kommo (sync the account?)"
        stage = pipeline.stage(status_id)
        if stage is None or stage.gone:
            return f"stage {status_id} does not exist in pipeline {pipeline.name!r}"
        if allowed is not None and (pipeline_id, status_id) not in {tuple(x) for x in allowed}:
            return f"stage {stage.name!r} is not among the stages this agent may move leads to"
        return None

    async def create_task(self, org_id: str, lead_id: int, text: str, responsible_user_id: int | None,
                          deadline: datetime, idempotency_key: str, *, dry_run: bool = False,
                          conversation_id: str | None = None, agent_id: str | None = None) -> ActionRecord:
        account = await self.account(org_id)
        refuse = None if text.strip() else "empty task text"
        if deadline.tzinfo is None:
            refuse = refuse or "deadline must be timezone-aware"
        elif deadline <= utcnow():
            refuse = refuse or "deadline is in the past"
        if responsible_user_id is not None and not refuse:
            users = {u.user_id: u for u in await self.storage.kommo_catalog.users(org_id, include_gone=True)}
            user = users.get(responsible_user_id)
            if users and (user is None or user.gone or not user.is_active):
                refuse = f"user {responsible_user_id} is not an active Kommo user"
        task = {"text": text, "complete_till": int(deadline.timestamp()) if deadline.tzinfo else 0,
                "entity_id": int(lead_id), "entity_type": "leads", "task_type_id": 1}
        if responsible_user_id is not None:
            task["responsible_user_id"] = int(responsible_user_id)

        async def find(_record: ActionRecord) -> dict | None:
            for t in await self.api.lead_tasks(account, lead_id):
                if t.get("text") == text and t.get("complete_till") == task["complete_till"]:
                    return {"id": t.get("id")}
            return None

        return await self._journal(
            org_id, kind="create_task", key=idempotency_key, lead_id=lead_id, dry_run=dry_run, refuse=refuse,
            params=task, perform=lambda: self.api.create_task(account, task), find_existing=find,
            conversation_id=conversation_id, agent_id=agent_id)

    async def add_note(self, org_id: str, lead_id: int, text: str, idempotency_key: str, *,
                       note_type: str = "common", dry_run: bool = False, conversation_id: str | None = None,
                       agent_id: str | None = None) -> ActionRecord:
        account = await self.account(org_id)
        return await self._journal(
            org_id, kind="add_note", key=idempotency_key, lead_id=lead_id, dry_run=dry_run,
            refuse=None if text.strip() else "empty note", params={"text": text, "note_type": note_type},
            perform=lambda: self.api.add_lead_note(account, lead_id, text, note_type),
            find_existing=self.replies.note_finder(account, lead_id, text),
            conversation_id=conversation_id, agent_id=agent_id)

    async def update_lead_field(self, org_id: str, lead_id: int, field_id: int, value: Any, idempotency_key: str, *,
                                enum_id: int | None = None, dry_run: bool = False, conversation_id: str | None = None,
                                agent_id: str | None = None,
                                allowed_field_ids: list[int] | None = None) -> ActionRecord:
        """`enum_id`: the chosen option of a select-like field (Kommo stores the option by id).
        `allowed_field_ids`: the agent's writable fields (None: an operator's own write). The
        value is checked against the synced field's type, options and length cap right before
        the write, whatever validated it earlier."""
        account = await self.account(org_id)
        refuse = await self._field_problem(org_id, "leads", field_id)
        if not refuse and allowed_field_ids is not None and field_id not in set(allowed_field_ids):
            refuse = f"lead field {field_id} is not among the fields this agent may write"
        if not refuse:
            fields = {f.field_id: f for f in await self.storage.kommo_catalog.fields(org_id, "leads")}
            if field_id in fields:
                try:
                    value, checked_enum = check_field_value(fields[field_id], value, enum_id)
                    enum_id = checked_enum if checked_enum is not None else enum_id
                except FieldValueRefused as exc:
                    refuse = str(exc)
        entry = {"value": value, **({"enum_id": int(enum_id)} if enum_id is not None else {})}
        body = {"custom_fields_values": [{"field_id": int(field_id), "values": [entry]}]}
        return await self._journal(
            org_id, kind="update_lead_field", key=idempotency_key, lead_id=lead_id, dry_run=dry_run, refuse=refuse,
            params={"field_id": field_id, **entry}, resend_safe=True,
            perform=lambda: self.api.update_lead(account, lead_id, body),
            conversation_id=conversation_id, agent_id=agent_id)

    async def update_contact_field(self, org_id: str, contact_id: int, field_id: int, value: Any,
                                   idempotency_key: str, *, enum_code: str | None = None, lead_id: int | None = None,
                                   dry_run: bool = False, conversation_id: str | None = None,
                                   agent_id: str | None = None) -> ActionRecord:
        """Multi-value fields (PHONE, EMAIL, multiselect) are replaced as a whole by Kommo, so the
        existing values are re-read and resent with the new one added."""
        account = await self.account(org_id)
        refuse = await self._field_problem(org_id, "contacts", field_id)
        fields = {f.field_id: f for f in await self.storage.kommo_catalog.fields(org_id, "contacts")}
        multi = field_id in fields and fields[field_id].type in MULTI_VALUE_TYPES
        new_value = {"value": value, **({"enum_code": enum_code} if enum_code else {})}

        async def perform() -> dict:
            values = [new_value]
            if multi:
                contact = await self.api.contact(account, contact_id) or {}
                current = next((f for f in contact.get("custom_fields_values") or []
                                if f.get("field_id") == field_id), None)
                kept = [{k: v for k, v in x.items() if k in ("value", "enum_code", "enum_id")}
                        for x in (current or {}).get("values", [])]
                values = kept if any(str(x.get("value")) == str(value) for x in kept) else [*kept, new_value]
            body = {"custom_fields_values": [{"field_id": int(field_id), "values": values}]}
            return {**await self.api.update_contact(account, contact_id, body), "values": values}

        return await self._journal(
            org_id, kind="update_contact_field", key=idempotency_key, lead_id=lead_id, dry_run=dry_run,
            refuse=refuse, params={"contact_id": contact_id, "field_id": field_id, "value": value},
            resend_safe=True, perform=perform, conversation_id=conversation_id, agent_id=agent_id)

    async def _field_problem(self, org_id: str, entity: str, field_id: int) -> str | None:
        fields = {f.field_id: f for f in await self.storage.kommo_catalog.fields(org_id, entity, include_gone=True)}
        if fields and (field_id not in fields or fields[field_id].gone):
            return f"{entity} field {field_id} does not exist in Kommo"
        return None
