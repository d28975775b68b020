"""`doctor`: check settings, stores, the LLM, each Kommo connection and the bot token, say what to fix.

Every check gives a `Finding`: ok, a warning (works, but probably not what the operator wants,
such as a delivery mode that reaches no customer) or a problem (something is broken). The CLI
prints them and exits non-zero when there is a problem. Checks are independent and bounded by a
timeout, so one unreachable part never hides the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

from core.kommo.errors import KommoError, KommoForbidden
from core.kommo_admin import REACHES_CUSTOMER, KommoAdmin
from core.redact import url_without_password
from core.storage.mongo import ping

OK, WARNING, PROBLEM = "ok", "warning", "problem"
TIMEOUT_S = 5.0


@dataclass
class Finding:
    part: str
    level: str  # ok | warning | problem
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


async def _bounded(check: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(check, timeout=TIMEOUT_S)


def _failure(exc: BaseException) -> str:
    return "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"[:200]


class Doctor:
    def __init__(self, services: Any) -> None:
        self.services = services
        self.settings = services.settings

    async def run(self) -> list[Finding]:
        findings = [self._settings()]
        for check in (self._mongo, self._redis, self._qdrant, self._llm, self._telegram):
            findings.append(await check())
        findings += await self._kommo()
        return findings

    def _settings(self) -> Finding:
        s = self.settings
        stores = "servers" if s.mongo.url else "embedded"
        return Finding("settings", OK, f"data folder {s.data_dir}; stores: {stores}")

    async def _mongo(self) -> Finding:
        where = url_without_password(self.settings.mongo.url) if self.settings.mongo.url else \
            f"embedded server on port {self.settings.mongo.embedded_port}"
        try:
            await _bounded(ping(self.services.mongo_client))
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            return Finding("mongo", PROBLEM, f"{where}: {_failure(exc)}",
                           "start `kommo-agent up`, or check MONGO_URL and that the server runs")
        return Finding("mongo", OK, where)

    async def _redis(self) -> Finding:
        try:
            await _bounded(self.services.redis.ping())
        except Exception as exc:  # noqa: BLE001 - as above
            return Finding("redis", PROBLEM, _failure(exc), "start `kommo-agent up`, or check REDIS_URL")
        return Finding("redis", OK, "reachable")

    async def _qdrant(self) -> Finding:
        q = self.settings.qdrant
        if not q.url:
            return Finding("qdrant", OK, "embedded vector store (opened by one process: the worker under `up`)")
        try:
            from qdrant_client import AsyncQdrantClient  # noqa: PLC0415 - only when a server is configured

            client = AsyncQdrantClient(url=q.url, api_key=q.api_key.get_secret_value() if q.api_key else None,
                                       timeout=int(TIMEOUT_S))
            try:
                await _bounded(client.get_collections())
            finally:
                await client.close()
        except Exception as exc:  # noqa: BLE001 - as above
            return Finding("qdrant", PROBLEM, f"{url_without_password(q.url)}: {_failure(exc)}",
                           "check QDRANT_URL and QDRANT_API_KEY")
        return Finding("qdrant", OK, url_without_password(q.url))

    async def _llm(self) -> Finding:
        llm = self.settings.llm
        if not llm.enabled:
            return Finding("llm", WARNING, "no LLM key: agents answer with extracts from the knowledge",
                           "set LLM_API_KEY (and LLM_BASE_URL, LLM_MODEL) for written answers")
        try:
            from openai import AsyncOpenAI  # noqa: PLC0415 - only when a key is configured

            client = AsyncOpenAI(base_url=llm.base_url, api_key=llm.api_key.get_secret_value(), timeout=TIMEOUT_S,
                                 max_retries=0)
            try:
                models = await _bounded(client.models.list())
            finally:
                await client.close()
        except Exception as exc:  # noqa: BLE001 - as above
            return Finding("llm", PROBLEM, f"{llm.base_url}: {_failure(exc)}",
                           "check LLM_BASE_URL and LLM_API_KEY")
        names = {m.id for m in getattr(models, "data", [])}
        if names and llm.model not in names:
            return Finding("llm", WARNING, f"{llm.base_url}: the model {llm.model} is not in the provider's list",
                           "check LLM_MODEL")
        return Finding("llm", OK, f"{llm.base_url} ({llm.model})")

    async def _telegram(self) -> Finding:
        t = self.settings.telegram
        if t.bot_token is None:
            return Finding("telegram", WARNING, "no bot token: the Telegram console is off",
                           "create a bot with @BotFather and set TELEGRAM_BOT_TOKEN")
        base = (t.api_base_url or "https://api.telegram.org").rstrip("/")
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session:
                async with session.post(f"{base}/bot{t.bot_token.get_secret_value()}/getMe") as resp:
                    body = await resp.json(content_type=None)
        except Exception as exc:  # noqa: BLE001 - as above
            return Finding("telegram", PROBLEM, f"Telegram did not answer: {_failure(exc)}",
                           "check the network, or TELEGRAM_API_BASE_URL")
        if resp.status == 401 or not body.get("ok"):
            return Finding("telegram", PROBLEM, "Telegram refused the bot token",
                           "copy the token again from @BotFather into TELEGRAM_BOT_TOKEN")
        return Finding("telegram", OK, f"bot @{body['result'].get('username', '?')}")

    async def _kommo(self) -> list[Finding]:
        storage = self.services.storage
        findings: list[Finding] = []
        for org in await storage.orgs.list_all():
            account = await storage.kommo_accounts.for_org(org.id)
            part = f"kommo {org.name}"
            if account is None:
                findings.append(Finding(part, WARNING, "not connected",
                                        f"kommo-agent kommo connect --org {org.id} ..."))
                continue
            findings.append(self._token(part, account, org.id))
            findings += [self._delivery(part, account, a) for a in await storage.agents.list(org.id)]
            findings.append(await self._webhook(part, account))
        return findings

    @staticmethod
    def _token(part: str, account: Any, org_id: str) -> Finding:
        health = KommoAdmin.token_health(account)
        if health == "ok":
            return Finding(part, OK, f"{account.host}: token ok")
        if health == "expires_soon":
            return Finding(part, WARNING, f"{account.host}: the token expires soon ({account.expires_at:%Y-%m-%d})",
                           "it is refreshed automatically while beat runs; if not, reconnect")
        reason = f" ({account.status_reason})" if account.status_reason else ""
        return Finding(part, PROBLEM, f"{account.host}: token {health}{reason}",
                       f"reconnect: kommo-agent kommo connect --org {org_id} ...")

    @staticmethod
    def _delivery(part: str, account: Any, agent: Any) -> Finding:
        mode = agent.delivery_mode
        missing = KommoAdmin.missing_for_mode(mode, account)
        where = f"agent {agent.name}: delivery {mode.value}"
        if missing:
            return Finding(part, PROBLEM, f"{where} is missing {', '.join(missing)}",
                           "set it up: kommo-agent kommo delivery (see docs/KOMMO.md)")
        if not REACHES_CUSTOMER[mode]:
            return Finding(part, WARNING, f"{where}: replies stay internal notes, customers see nothing",
                           "choose salesbot or salesbot_run to reach customers (docs/KOMMO.md)")
        return Finding(part, OK, f"{where}, reaches the customer")

    async def _webhook(self, part: str, account: Any) -> Finding:
        kommo = await self.services.kommo()
        url = KommoAdmin.webhook_url(kommo, account)
        if not url:
            return Finding(part, PROBLEM, "no webhook address (its token is unreadable)", "reconnect the account")
        try:
            hooks = await _bounded(kommo.api.webhooks(account, destination=url))
        except KommoForbidden:
            return Finding(part, WARNING, "cannot read the webhooks (the token's user is not an admin)",
                           "check by hand in Kommo: Settings > Integrations > Webhooks (docs/KOMMO.md)")
        except (KommoError, TimeoutError) as exc:
            return Finding(part, PROBLEM, f"webhooks not checked: {_failure(exc)}", "check the connection")
        from core.kommo.intake.parser import SUBSCRIBED_EVENTS  # noqa: PLC0415 - the Kommo area's own list

        ours = [h for h in hooks if h.get("destination") == url and not h.get("disabled")]
        if not ours:
            return Finding(part, PROBLEM, "the webhook is not registered (or Kommo disabled it)",
                           "run kommo connect again, or register it by hand (docs/KOMMO.md)")
        lacking = sorted(set(SUBSCRIBED_EVENTS) - set(ours[0].get("settings") or []))
        if lacking:
            return Finding(part, WARNING, f"the webhook lacks events: {', '.join(lacking)}",
                           "run kommo connect again, or tick them by hand (docs/KOMMO.md)")
        return Finding(part, OK, "webhook registered with every event")
