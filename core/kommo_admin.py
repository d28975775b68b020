"""`KommoAdmin`: the Kommo connection as an operator manages it (console and CLI): status in
plain facts, connect with a long-lived token or OAuth, resync, disconnect. Role-checked here.

It drives the process's Kommo area (`CoreServices.kommo()`); the few names it needs from inside
`core/kommo` are imported where used, so that package can be reorganised freely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.clock import utcnow
from core.delivery_setup import REACHES_CUSTOMER
from core.errors import InvalidInput, SecretError
from core.models.agent import DeliveryMode
from core.models.org import Operator
from core.team.errors import NotAMember
from core.team.roles import Permission, require

EXPIRES_SOON = timedelta(days=2)


class KommoAddressInvalid(InvalidInput):
    code = "kommo_address_invalid"


class KommoTokenInvalid(InvalidInput):
    code = "kommo_token_invalid"


class KommoTokenRejected(InvalidInput):
    code = "kommo_token_rejected"


@dataclass
class AgentDelivery:
    agent_id: str
    name: str
    mode: DeliveryMode
    reaches_customer: bool
    # What keeps the mode from reaching customers now: internal_only, salesbot_bot_id,
    # reply_field_id, bot_not_found, bot_disabled, field_not_found, widget_secret, chats_channel,
    # unchecked (Kommo did not answer the live check).
    missing: list[str] = field(default_factory=list)

    @property
    def reaches_now(self) -> bool:
        return self.reaches_customer and not self.missing


@dataclass
class KommoStatus:
    connected: bool
    host: str = ""
    auth_kind: str = ""
    status: str = ""
    status_reason: str | None = None
    token_health: str = ""  # ok | expires_soon | expired | needs_reauth | blocked
    expires_at: datetime | None = None
    last_sync_at: datetime | None = None
    pipelines: int = 0
    users: int = 0
    webhook_url: str = ""
    events: list[str] = field(default_factory=list)
    agents: list[AgentDelivery] = field(default_factory=list)
    oauth_available: bool = False


@dataclass
class Connected:
    host: str
    webhook_url: str
    webhook_registered: bool
    webhook_note: str | None
    sync: dict[str, Any] | None
    sync_error: str | None


class KommoAdmin:
    def __init__(self, services: Any) -> None:
        self.services = services
        self.storage = services.storage

    def _check(self, org_id: str, actor: Operator, permission: Permission) -> None:
        if actor.org_id != org_id:
            raise NotAMember("the actor is not in this organisation", org_id=org_id)
        require(actor, permission)

    async def status(self, org_id: str, actor: Operator) -> KommoStatus:
        self._check(org_id, actor, Permission.SEE_SECRETS)
        oauth = bool(self.services.settings.kommo.client_id)
        account = await self.storage.kommo_accounts.for_org(org_id)
        if account is None:
            return KommoStatus(connected=False, oauth_available=oauth)
        from core.kommo.intake.parser import SUBSCRIBED_EVENTS  # noqa: PLC0415 - see the module docstring

        kommo = await self.services.kommo()
        setup = self.services.delivery_setup()
        agents = [AgentDelivery(a.id, a.name, a.delivery_mode, REACHES_CUSTOMER[a.delivery_mode],
                                [p for p in await setup.problems(account, a.delivery_mode) if p != "internal_only"])
                  for a in await self.storage.agents.list(org_id, sort=[("created_at", 1)])]
        return KommoStatus(
            connected=True, host=account.host, auth_kind=account.auth_kind.value, status=account.status.value,
            status_reason=account.status_reason, token_health=self.token_health(account), expires_at=account.expires_at,
            last_sync_at=account.last_sync_at, pipelines=len(await self.storage.kommo_catalog.pipelines(org_id)),
            users=len(await self.storage.kommo_catalog.users(org_id)),
            webhook_url=self.webhook_url(kommo, account), events=list(SUBSCRIBED_EVENTS), agents=agents,
            oauth_available=oauth)

    @staticmethod
    def webhook_url(kommo: Any, account: Any) -> str:
        try:
            return kommo.connections.webhook_url(account)
        except (KeyError, SecretError):  # no readable webhook token: reconnecting makes one
            return ""

    @staticmethod
    def missing_for_mode(mode: DeliveryMode, account) -> list[str]:
        if mode == DeliveryMode.SALESBOT_RUN:
            return [name for name, value in (("salesbot_bot_id", account.salesbot_bot_id),
                                             ("reply_field_id", account.reply_field_id)) if not value]
        if mode == DeliveryMode.CHATS_API and not account.chats_scope_id:
            return ["chats_channel"]
        return []

    @staticmethod
    def token_health(account) -> str:
        if account.status.value != "active":
            return account.status.value
        if account.expires_at is None:
            return "ok"
        if account.expires_at <= utcnow():
            return "expired"
        return "expires_soon" if account.expires_at - utcnow() < EXPIRES_SOON else "ok"

    async def connect_token(self, org_id: str, actor: Operator, address: str, token: str) -> Connected:
        self._check(org_id, actor, Permission.MANAGE_KOMMO)
        from core.kommo.auth.connections import parse_account_host  # noqa: PLC0415 - see the module docstring

        try:
            parse_account_host(address)
        except InvalidInput:
            raise KommoAddressInvalid("not a Kommo account address", address=address[:80]) from None
        token = (token or "").strip()
        if not token or len(token) > 4096 or any(c.isspace() for c in token):
            raise KommoTokenInvalid("that is not one long-lived token")
        kommo = await self.services.kommo()
        try:
            result = await kommo.connections.connect_long_lived(org_id, address, token)
        except InvalidInput as exc:  # the token check answered 401
            raise KommoTokenRejected("Kommo rejected the token", host=address) from exc
        return Connected(host=result.account.host, webhook_url=result.webhook_url,
                         webhook_registered=result.webhook_registered, webhook_note=result.webhook_note,
                         sync=result.sync.as_dict() if result.sync else None, sync_error=result.sync_error)

    async def oauth_link(self, org_id: str, actor: Operator) -> str:
        self._check(org_id, actor, Permission.MANAGE_KOMMO)
        return await (await self.services.kommo()).oauth.authorize_url(org_id, actor.id)

    async def resync(self, org_id: str, actor: Operator) -> dict[str, Any]:
        self._check(org_id, actor, Permission.MANAGE_KOMMO)
        return (await (await self.services.kommo()).sync_org(org_id)).as_dict()

    async def disconnect(self, org_id: str, actor: Operator) -> bool:
        """Forget the connection: tokens and the webhook token go with it, so the old webhook URL
        stops being accepted. Agents, conversations and the synced catalog stay."""
        self._check(org_id, actor, Permission.MANAGE_KOMMO)
        account = await self.storage.kommo_accounts.for_org(org_id)
        if account is None:
            return False
        return await self.storage.kommo_accounts.delete(org_id, account.id)
