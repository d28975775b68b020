"""Delivery set-up: how an agent's replies reach customers, checked against the live Kommo account
before anything is saved (`kommo-agent kommo delivery`, the console's /kommo screen).

The modes and what each reaches (../shared/kommo-api.md, sections 5.1 and 5.2):
- `salesbot_run`: the reply is written to a text lead field, then a prepared Salesbot sends
  `{{lead.cf.<id>}}` into the customer's own chat. Checked: the bot is in `GET /api/v4/bots`
  and switched on, the field is a text/textarea lead field (or created here as "AI reply").
- `salesbot`: our widget's step in a Salesbot calls us (widget_request) and the bot waits; we
  answer through its single-use return_url. Needs the secret of the integration that owns the
  widget (stored per connection, encrypted) or, for accounts connected through our public
  integration, the deployment's client secret.
- `chats_api`: only the chats of this project's own channel (an account connected to it).
- `note_draft`: a draft in an internal note for a manager to copy; customers see nothing.

Every refusal is a `DeliverySetupInvalid` whose `code` names what is wrong; the adapters say what
to do. Checks run first and the account is saved before the agent, so nothing is half-saved.
The result lists the Kommo admin's steps as codes and parameters; the adapters print them in
the operator's language from the console catalogs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.errors import InvalidInput, NotFound, SecretError
from core.kommo.errors import KommoError
from core.models.agent import Agent, DeliveryMode
from core.models.kommo import KommoAccount
from core.models.org import Operator
from core.security.keyring import Keyring
from core.team.errors import NotAMember
from core.team.roles import Permission, require

REPLY_FIELD_TYPES = ("text", "textarea")
REPLY_FIELD_NAME = "AI reply"
# Whether a mode's replies reach the customer's own chat at all.
REACHES_CUSTOMER = {DeliveryMode.NOTE_DRAFT: False, DeliveryMode.SALESBOT: True, DeliveryMode.SALESBOT_RUN: True,
                    DeliveryMode.CHATS_API: True}
MAX_WIDGET_SECRET = 512


class DeliverySetupInvalid(InvalidInput):
    """A choice that cannot work; `code` names what is wrong (the adapters say what to do)."""

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
    created_field_id: int | None = None


class DeliverySetup(Protocol):
    async def configure(self, org_id: str, actor: Operator, agent_id: str, mode: DeliveryMode, *,
                        bot_id: int | None = None, field_id: int | None = None) -> DeliverySetupResult:
        """Validate against Kommo, then save the agent's mode (and the account's bot/field)."""


def bot_is_active(bot: dict[str, Any]) -> bool | None:
    """Kommo's bot objects are not documented field by field: read the usual spellings; None
    when the list says nothing about it."""
    for key in ("is_active", "active", "enabled"):
        if key in bot:
            return bool(bot[key]) and str(bot[key]).lower() not in ("0", "false", "off")
    if "status" in bot:
        return str(bot["status"]).lower() in ("1", "active", "on", "enabled", "true")
    return None


class DeliverySetupService:
    """`kommo`: an async callable giving the process's Kommo area (`CoreServices.kommo`)."""

    def __init__(self, *, storage: Any, kommo: Callable[[], Awaitable[Any]], keyring: Keyring,
                 global_widget_secret: bool) -> None:
        self.storage = storage
        self.kommo = kommo
        self.keyring = keyring
        self.global_widget_secret = global_widget_secret

    async def find_agent(self, org_id: str, ref: str | None) -> Agent:
        """An agent by id or by name; with no `ref`, the organisation's only agent."""
        agents = await self.storage.agents.list(org_id, sort=[("created_at", 1)])
        if not ref:
            if len(agents) == 1:
                return agents[0]
            raise DeliverySetupInvalid("delivery_agent_ambiguous", "name the agent (--agent ID or NAME)",
                                       agents=[a.name for a in agents])
        by_id = next((a for a in agents if a.id == ref), None)
        named = [a for a in agents if a.name.casefold() == ref.strip().casefold()]
        if by_id is not None:
            return by_id
        if len(named) == 1:
            return named[0]
        if named:
            raise DeliverySetupInvalid("delivery_agent_ambiguous", "several agents have that name: use its id",
                                       agents=[a.id for a in named])
        raise NotFound("no such agent in this organisation", agent_id=ref[:80])

    async def configure(self, org_id: str, actor: Operator, agent_id: str, mode: DeliveryMode, *,
                        bot_id: int | None = None, field_id: int | None = None, create_field: bool = False,
                        widget_secret: str | None = None) -> DeliverySetupResult:
        if actor.org_id != org_id:
            raise NotAMember("the actor is not in this organisation", org_id=org_id)
        require(actor, Permission.MANAGE_KOMMO)
        try:
            mode = DeliveryMode(mode)
        except ValueError:
            raise DeliverySetupInvalid("delivery_mode_invalid", "unknown delivery mode",
                                       modes=[m.value for m in DeliveryMode]) from None
        agent = await self.storage.agents.get(org_id, agent_id)
        if agent is None:
            raise NotFound("no such agent in this organisation", agent_id=agent_id)
        account = await self.storage.kommo_accounts.for_org(org_id)
        if account is None:
            raise DeliverySetupInvalid("kommo_not_connected", "connect Kommo first")
        changes: dict[str, Any] = {}
        created: int | None = None
        if mode == DeliveryMode.SALESBOT_RUN:
            changes, created = await self._salesbot_run(account, bot_id, field_id, create_field)
        elif mode == DeliveryMode.SALESBOT:
            changes = self._widget_secret(account, widget_secret)
        elif mode == DeliveryMode.CHATS_API and not account.chats_scope_id:
            raise DeliverySetupInvalid("delivery_chats_unavailable",
                                       "chats_api works only with this project's own chat channel")
        # Checks done: save the account first, so the agent never points at a missing set-up.
        changes["delivery_version"] = account.delivery_version + 1
        account = await self.storage.kommo_accounts.update(org_id, account.id, changes) or account
        await self.storage.agents.update(org_id, agent.id, {"delivery_mode": mode})
        steps = await self.steps(account, mode)
        return DeliverySetupResult(agent.name, mode, REACHES_CUSTOMER[mode], steps, created)

    async def _salesbot_run(self, account: KommoAccount, bot_id: int | None, field_id: int | None,
                            create_field: bool) -> tuple[dict[str, Any], int | None]:
        if not bot_id or int(bot_id) <= 0:
            raise DeliverySetupInvalid("delivery_bot_missing", "salesbot_run needs the id of the sending bot")
        if create_field and field_id:
            raise DeliverySetupInvalid("delivery_field_conflict", "give a field id or ask to create one, not both")
        if not create_field and not field_id:
            raise DeliverySetupInvalid("delivery_field_invalid", "salesbot_run needs a text lead field for the reply",
                                       field_id="")
        kommo = await self.kommo()
        bots = {int(b["id"]): b for b in await kommo.api.bots(account) if str(b.get("id", "")).isdigit()}
        bot = bots.get(int(bot_id))
        if bot is None:
            raise DeliverySetupInvalid("delivery_bot_not_found", "no Salesbot with that id in this account",
                                       bot_id=int(bot_id), bots=[f"{i} {b.get('name', '')}".strip()
                                                                 for i, b in list(bots.items())[:10]])
        if bot_is_active(bot) is False:
            raise DeliverySetupInvalid("delivery_bot_disabled", "that Salesbot is switched off",
                                       bot_id=int(bot_id), name=str(bot.get("name", ""))[:80])
        created = None
        if create_field:
            made = await kommo.api.create_lead_field(account, REPLY_FIELD_NAME, "textarea")
            if not made.get("id"):
                raise KommoError("Kommo did not return the new field's id")
            field_id = created = int(made["id"])
        else:
            live = {int(f["id"]): f for f in await kommo.api.custom_fields(account, "leads") if f.get("id")}
            chosen = live.get(int(field_id))
            if chosen is None or chosen.get("type") not in REPLY_FIELD_TYPES:
                raise DeliverySetupInvalid("delivery_field_invalid", "the reply field must be a text lead field",
                                           field_id=field_id)
        return {"salesbot_bot_id": int(bot_id), "reply_field_id": int(field_id)}, created

    def _widget_secret(self, account: KommoAccount, secret: str | None) -> dict[str, Any]:
        if secret is not None:
            secret = secret.strip()
            if not secret or len(secret) > MAX_WIDGET_SECRET or any(c.isspace() for c in secret):
                raise DeliverySetupInvalid("delivery_widget_secret_invalid",
                                           "that is not an integration's secret key")
            return {"secrets.widget_secret": self.keyring.encrypt(account.org_id, "widget_secret", secret)}
        if "widget_secret" in account.secrets or self.global_widget_secret:
            return {}
        raise DeliverySetupInvalid("delivery_widget_secret_missing",
                                   "salesbot mode needs the secret key of the integration that holds the widget")

    async def steps(self, account: KommoAccount, mode: DeliveryMode) -> list[tuple[str, dict[str, Any]]]:
        """The Kommo admin's steps for `mode`, then the webhook events to tick by hand."""
        from core.kommo.intake.parser import SUBSCRIBED_EVENTS  # noqa: PLC0415 - the engine's own list

        kommo = await self.kommo()
        try:
            webhook, salesbot_url = kommo.connections.webhook_url(account), kommo.connections.salesbot_url(account)
        except (KeyError, SecretError):  # no readable webhook token: reconnecting makes one
            webhook = salesbot_url = "(reconnect Kommo to get the address)"
        steps: list[tuple[str, dict[str, Any]]] = []
        if mode == DeliveryMode.SALESBOT_RUN:
            steps.append(("salesbot_run.bot", {"bot_id": account.salesbot_bot_id,
                                               "field_id": account.reply_field_id}))
        elif mode == DeliveryMode.SALESBOT:
            steps.append(("salesbot.widget", {"url": salesbot_url}))
        elif mode == DeliveryMode.CHATS_API:
            steps.append(("chats_api.channel", {}))
        else:
            steps.append(("note_draft.internal", {}))
        steps.append(("webhook.events", {"url": webhook, "events": ", ".join(SUBSCRIBED_EVENTS)}))
        return steps

    async def problems(self, account: KommoAccount, mode: DeliveryMode) -> list[str]:
        """What keeps `mode` from reaching customers now, read live where it can be (status)."""
        if mode == DeliveryMode.NOTE_DRAFT:
            return ["internal_only"]
        if mode == DeliveryMode.CHATS_API:
            return [] if account.chats_scope_id else ["chats_channel"]
        if mode == DeliveryMode.SALESBOT:
            return [] if "widget_secret" in account.secrets or self.global_widget_secret else ["widget_secret"]
        missing = [name for name, value in (("salesbot_bot_id", account.salesbot_bot_id),
                                            ("reply_field_id", account.reply_field_id)) if not value]
        if missing:
            return missing
        try:
            api = (await self.kommo()).api
            bot = next((b for b in await api.bots(account) if str(b.get("id")) == str(account.salesbot_bot_id)), None)
            if bot is None:
                return ["bot_not_found"]
            if bot_is_active(bot) is False:
                return ["bot_disabled"]
            fields = {int(f["id"]) for f in await api.custom_fields(account, "leads") if f.get("id")}
            return [] if account.reply_field_id in fields else ["field_not_found"]
        except KommoError:
            return ["unchecked"]  # Kommo did not answer: say so rather than guess
