"""Delivery set-up as the console needs it: the port the /kommo screen calls, and an interim
implementation.

The real service belongs to the delivery issue (issue 15, section 1: `kommo-agent kommo
delivery`): it checks the Salesbot bot against the live account (`GET /api/v4/bots`), can create
the reply field and the sending bot, and prints the Kommo steps. Until it lands,
`CatalogDeliverySetup` implements the same port with what is known locally: the role, the agent,
the connection, a bot id given as a number and a reply field that is a text/textarea lead field
in the synced catalog. It does NOT check that the bot exists in Kommo; swap it for the issue-15
service (same `configure` signature) when that is on main.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from core.errors import InvalidInput, NotFound
from core.kommo_admin import REACHES_CUSTOMER
from core.models.agent import DeliveryMode
from core.models.org import Operator
from core.team.errors import NotAMember
from core.team.roles import Permission, require

REPLY_FIELD_TYPES = ("text", "textarea")


class DeliverySetupInvalid(InvalidInput):
    """A choice that cannot work; `code` names what is wrong (the console says what to do)."""

    def __init__(self, code: str, message: str, **params: Any) -> None:
        super().__init__(message, **params)
        self.code = code


@dataclass
class DeliverySetupResult:
    agent_name: str
    mode: DeliveryMode
    reaches_customer: bool
    # What the Kommo admin must do next, as (step code, params) for the adapter to translate.
    steps: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class DeliverySetup(Protocol):
    async def configure(self, org_id: str, actor: Operator, agent_id: str, mode: DeliveryMode, *,
                        bot_id: int | None = None, field_id: int | None = None) -> DeliverySetupResult:
        """Validate, then save the agent's mode (and the account's bot/field); nothing half-saved."""


class CatalogDeliverySetup:
    """Interim `DeliverySetup` over the synced catalog (see the module docstring)."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage

    async def configure(self, org_id: str, actor: Operator, agent_id: str, mode: DeliveryMode, *,
                        bot_id: int | None = None, field_id: int | None = None) -> DeliverySetupResult:
        if actor.org_id != org_id:
            raise NotAMember("the actor is not in this organisation", org_id=org_id)
        require(actor, Permission.MANAGE_KOMMO)
        mode = DeliveryMode(mode)
        agent = await self.storage.agents.get(org_id, agent_id)
        if agent is None:
            raise NotFound("no such agent in this organisation", agent_id=agent_id)
        account = await self.storage.kommo_accounts.for_org(org_id)
        if account is None:
            raise DeliverySetupInvalid("kommo_not_connected", "connect Kommo first")
        account_changes: dict[str, Any] = {}
        steps: list[tuple[str, dict[str, Any]]] = []
        if mode == DeliveryMode.SALESBOT_RUN:
            if not bot_id or int(bot_id) <= 0:
                raise DeliverySetupInvalid("delivery_bot_missing", "salesbot_run needs the id of the sending bot")
            fields = {f.field_id: f for f in await self.storage.kommo_catalog.fields(org_id, "leads")}
            chosen = fields.get(int(field_id or 0))
            if chosen is None or chosen.type not in REPLY_FIELD_TYPES:
                raise DeliverySetupInvalid("delivery_field_invalid", "the reply field must be a text lead field",
                                           field_id=field_id)
            account_changes = {"salesbot_bot_id": int(bot_id), "reply_field_id": chosen.field_id}
            steps = [("salesbot_run.bot", {"field_id": chosen.field_id, "bot_id": int(bot_id)})]
        elif mode == DeliveryMode.SALESBOT:
            steps = [("salesbot.widget", {})]
        elif mode == DeliveryMode.CHATS_API:
            if not account.chats_scope_id:
                raise DeliverySetupInvalid("delivery_chats_unavailable",
                                           "chats_api works only with this project's own channel")
        else:
            steps = [("note_draft.internal", {})]
        # Checks done: now save (the account first, so the agent never points at a missing setup).
        if account_changes:
            await self.storage.kommo_accounts.update(org_id, account.id, account_changes)
        await self.storage.agents.update(org_id, agent.id, {"delivery_mode": mode})
        return DeliverySetupResult(agent.name, mode, REACHES_CUSTOMER[mode], steps)
