"""Connecting an organisation to its Kommo account (long-lived token or an OAuth pair).

Tokens and the webhook path token are stored only as keyring envelopes; the webhook token's
sha256 is stored beside it for lookup. Reconnecting keeps the account document, its settings and
its webhook token, so the URL pasted into Kommo keeps working.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import aiohttp
import structlog

from core.clock import utcnow
from core.config import KommoSettings
from core.errors import InvalidInput, plain_reason
from core.ids import new_id, new_token
from core.kommo.auth.tokens import TokenPair, seal
from core.kommo.errors import KommoError, KommoNotConnected, KommoUnavailable
from core.kommo.http.api import KommoApi
from core.kommo.http.hosts import host_base, host_headers
from core.kommo.http.ratelimit import RateLimiter
from core.kommo.http.session import SessionProvider
from core.kommo.intake.parser import SUBSCRIBED_EVENTS
from core.kommo.sync.catalog import KommoSync, SyncReport
from core.models.kommo import AuthKind, ConnectionStatus, KommoAccount
from core.security.keyring import Keyring
from core.storage import Storage
from core.storage.repositories.kommo_accounts import hook_token_hash

log = structlog.get_logger("kommo.connections")
_HOST = re.compile(r"^([a-z0-9][a-z0-9-]{0,62})(?:\.(kommo\.com|amocrm\.ru|amocrm\.com))?$")


def parse_account_host(value: str, *, require_domain: bool = False) -> tuple[str, str]:
    """`acme`, `acme.kommo.com`, or an address pasted from the browser
    (`https://acme.amocrm.ru/leads/pipeline/7?x=1`) -> (subdomain, base_domain)."""
    text = (value or "").strip().lower()
    try:
        parts = urlsplit(text if "://" in text else f"//{text}")
        host = parts.hostname or ""
    except ValueError:
        parts, host = None, ""
    # Only a bare host: a port, user info or another scheme is not an account address.
    if parts is None or parts.scheme not in ("", "http", "https") or parts.netloc != host:
        host = ""
    m = _HOST.match(host)
    if not m or m.group(1) == "www" or (require_domain and not m.group(2)):
        raise InvalidInput(f"not a Kommo account address: {value[:80]!r}")
    return m.group(1), m.group(2) or "kommo.com"


@dataclass
class RotatedHook:
    webhook_url: str
    registered: bool
    note: str | None
    events: list[str]


@dataclass
class ConnectResult:
    account: KommoAccount
    webhook_url: str
    sync: SyncReport | None
    sync_error: str | None = None
    webhook_registered: bool = False
    webhook_note: str | None = None  # why it was not registered: paste the URL into Kommo by hand


def _local_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host in ("localhost", "") or host.endswith(".local"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


class KommoConnections:
    def __init__(self, *, settings: KommoSettings, storage: Storage, keyring: Keyring,
                 http: SessionProvider, sync: KommoSync, api: KommoApi, limiter: RateLimiter) -> None:
        self.settings = settings
        self.api = api
        self.limiter = limiter
        self.storage = storage
        self.keyring = keyring
        self.http = http
        self.sync = sync

    def hook_token(self, account: KommoAccount) -> str:
        return self.keyring.decrypt(account.org_id, "hook_token", account.secrets["hook_token"])

    def webhook_url(self, account: KommoAccount) -> str:
        return f"{self.settings.public_base_url.rstrip('/')}/webhooks/kommo/{self.hook_token(account)}"

    def salesbot_url(self, account: KommoAccount) -> str:
        """Where the Salesbot widget step sends its widget_request (web/routes/kommo.py)."""
        return f"{self.settings.public_base_url.rstrip('/')}/kommo/salesbot/{self.hook_token(account)}"

    async def probe(self, subdomain: str, base_domain: str, token: str, pace_key: str | None = None) -> dict:
        """Check a token against GET /api/v4/account before anything is stored. Paced like every
        other call (`pace_key`: the account's id when reconnecting), 429s waited out."""
        host = f"{subdomain}.{base_domain}"
        pace_key = pace_key or f"host:{host}"
        for attempt in range(1, 4):
            await self.limiter.acquire(pace_key)
            session = await self.http.get()
            try:
                async with session.get(f"{host_base(self.settings, host)}/api/v4/account", params={"with": "amojo_id"},
                                       headers={"Authorization": f"Bearer {token}",
                                                **host_headers(self.settings, host)}) as r:
                    status = r.status
                    body = await r.json(content_type=None) if status in (200, 429) else None
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                raise KommoUnavailable(f"{host} did not answer: {plain_reason(exc)}") from None
            if status != 429 or attempt == 3:
                break
            retry_after = (body or {}).get("retry_after") if isinstance(body, dict) else None
            await self.limiter.pause(min(float(retry_after or 1), 10.0))
        if status == 401:
            raise InvalidInput(f"Kommo rejected the token for {host} (401): check the token and subdomain")
        if status != 200 or not isinstance(body, dict):
            raise KommoError(f"{host} answered {status} to the token check", status=status)
        return body

    async def connect_long_lived(self, org_id: str, address: str, token: str) -> ConnectResult:
        token = token.strip()
        if not token or len(token) > 4096 or any(c.isspace() for c in token):
            raise InvalidInput("the token file must hold one long-lived token")
        subdomain, base_domain = parse_account_host(address)
        existing = await self.storage.kommo_accounts.for_org(org_id)
        await self.probe(subdomain, base_domain, token, pace_key=existing.id if existing else None)
        account = await self._save(org_id, subdomain, base_domain, AuthKind.LONG_LIVED,
                                   {"access_token": token}, expires_at=None)
        return await self._after_connect(account)

    async def connect_oauth(self, org_id: str, host: str, pair: TokenPair) -> ConnectResult:
        subdomain, base_domain = parse_account_host(host, require_domain=True)
        account = await self._save(org_id, subdomain, base_domain, AuthKind.OAUTH,
                                   {"access_token": pair.access_token, "refresh_token": pair.refresh_token},
                                   expires_at=utcnow() + timedelta(seconds=pair.expires_in or 86400))
        return await self._after_connect(account)

    async def _save(self, org_id: str, subdomain: str, base_domain: str, kind: AuthKind,
                    tokens: dict[str, str | None], expires_at) -> KommoAccount:
        repo = self.storage.kommo_accounts
        existing = await repo.for_org(org_id)
        hook = self.hook_token(existing) if existing and "hook_token" in existing.secrets else new_token(32)
        secrets = seal(self.keyring, org_id, {**tokens, "hook_token": hook})
        if existing is not None and "widget_secret" in existing.secrets:
            # The Salesbot widget's integration secret was set by `kommo delivery`, not by the token.
            secrets["widget_secret"] = existing.secrets["widget_secret"]
        fields = {"subdomain": subdomain, "base_domain": base_domain, "auth_kind": kind,
                  "status": ConnectionStatus.ACTIVE, "status_reason": None, "secrets": secrets,
                  "hook_token_hash": hook_token_hash(hook), "expires_at": expires_at,
                  "client_id": self.settings.client_id if kind == AuthKind.OAUTH else None}
        if existing is None:
            return await repo.insert(org_id, KommoAccount(_id=new_id("kac"), org_id=org_id, **fields))
        fields["token_version"] = existing.token_version + 1
        if (existing.subdomain, existing.base_domain) != (subdomain, base_domain):
            fields.update(account_id=None, amojo_id=None, bot_user_id=None, chats_scope_id=None)
        return await repo.update(org_id, existing.id, fields)

    async def _after_connect(self, account: KommoAccount) -> ConnectResult:
        try:
            report = await self.sync.sync_account(account)
            error = None
        except KommoError as exc:  # connected anyway; the periodic sync retries
            report, error = None, str(exc)
        fresh = await self.storage.kommo_accounts.get(account.org_id, account.id)
        result = ConnectResult(account=fresh, webhook_url=self.webhook_url(fresh), sync=report, sync_error=error)
        result.webhook_registered, result.webhook_note = await self.register_webhook(fresh, result.webhook_url)
        return result

    async def rotate_hook_token(self, org_id: str) -> RotatedHook:
        """A new webhook URL token: the old URL stops working (unknown token, 404; processes that
        cached it within `WebhookIntake.cache_ttl_s` keep it that long at most), the new URL is
        registered in Kommo where we may, and the old registration is removed there."""
        repo = self.storage.kommo_accounts
        account = await repo.for_org(org_id)
        if account is None or "hook_token" not in account.secrets:
            raise KommoNotConnected("this organisation has no Kommo connection")
        old_url = self.webhook_url(account)
        hook = new_token(32)
        sealed = seal(self.keyring, org_id, {"hook_token": hook})["hook_token"]
        fresh = await repo.update(org_id, account.id, {"secrets.hook_token": sealed,
                                                       "hook_token_hash": hook_token_hash(hook)})
        url = self.webhook_url(fresh)
        registered, note = await self.register_webhook(fresh, url)
        if registered:
            try:
                await self.api.unregister_webhook(fresh, old_url)
            except KommoError as exc:  # the old URL answers 404 anyway; Kommo disables it in time
                note = f"the old webhook could not be removed in Kommo: {exc.code}"
        log.info("kommo hook token rotated", org_id=org_id, registered=registered)
        return RotatedHook(webhook_url=url, registered=registered, note=note, events=list(SUBSCRIBED_EVENTS))

    async def register_webhook(self, account: KommoAccount, url: str) -> tuple[bool, str | None]:
        """Subscribe our URL to the events we handle (re-posting replaces the list). Kommo allows
        it to admins on paid plans only, and cannot reach a local address: then the caller
        shows the URL to paste into Kommo's settings instead."""
        if _local_url(url):
            return False, "KOMMO_PUBLIC_BASE_URL is a local address Kommo cannot reach"
        try:
            await self.api.register_webhook(account, url, list(SUBSCRIBED_EVENTS))
        except KommoError as exc:
            log.warning("webhook registration refused", org_id=account.org_id, error=str(exc)[:200])
            return False, f"Kommo refused to register it ({str(exc)[:160]})"
        return True, None
