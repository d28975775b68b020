"""Access tokens: decrypting, refreshing (rotating refresh tokens) and the re-auth path.

Kommo rotates refresh tokens: each refresh returns a new pair and the old refresh token dies
once the new pair is used. So one refresh per account at a time: an in-process single flight
plus a Redis lock across processes. Inside the lock the stored pair is re-read (someone may have
refreshed already) and the new pair is written with compare-and-set on `token_version` BEFORE
anyone uses it. A refresh token Kommo rejects marks the connection NEEDS_REAUTH and alerts the
org's admins once; it is never retried in a loop, except once at the account's new host when
Kommo says (`/oauth2/account/current/subdomain`) that the account was renamed.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import redis.asyncio as aioredis
import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from core.clock import aware, utcnow
from core.config import KommoSettings
from core.errors import plain_reason
from core.kommo.errors import (
    KommoAuthError,
    KommoError,
    KommoNotConnected,
    KommoNotFound,
    KommoServerError,
    KommoTokenRevoked,
    KommoUnavailable,
    KommoValidationError,
)
from core.kommo.http.hosts import api_domain, host_base, host_headers, lookup_base_domain
from core.kommo.http.session import SessionProvider
from core.locks import renewable_lock
from core.models.kommo import AuthKind, ConnectionStatus, KommoAccount
from core.security.keyring import Keyring
from core.storage.notifications import NotificationOutbox
from core.storage.repositories.kommo_accounts import KommoAccountRepository

log = structlog.get_logger("kommo.tokens")


@dataclass(repr=False)
class TokenPair:
    access_token: str
    refresh_token: str | None
    expires_in: int | None

    def __repr__(self) -> str:  # never log token material
        return f"TokenPair(expires_in={self.expires_in})"


def seal(keyring: Keyring, org_id: str, values: dict[str, str | None]) -> dict[str, str]:
    """Encrypt secrets for `account.secrets`, bound to the org and the field name."""
    return {k: keyring.encrypt(org_id, k, v) for k, v in values.items() if v}


async def token_grant(http: SessionProvider, settings: KommoSettings, host: str,
                      payload: dict[str, Any]) -> TokenPair:
    """POST /oauth2/access_token at the account host (never www.kommo.com)."""
    if not (settings.client_id and settings.client_secret):
        raise KommoValidationError("KOMMO_CLIENT_ID and KOMMO_CLIENT_SECRET are not configured")
    body = {"client_id": settings.client_id, "client_secret": settings.client_secret.get_secret_value(),
            "redirect_uri": settings.redirect_uri or "", **payload}
    session = await http.get()
    try:
        async with session.post(f"{host_base(settings, host)}/oauth2/access_token", json=body,
                                headers=host_headers(settings, host)) as resp:
            status = resp.status
            data = await resp.json(content_type=None) if status != 204 else None
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        raise KommoUnavailable(f"token endpoint did not answer: {plain_reason(exc)}") from None
    if status >= 500:
        raise KommoServerError(f"token endpoint error {status}", status=status)
    if status == 404:  # no account at this host (renamed subdomain?)
        raise KommoNotFound(f"no Kommo account at {host} (404)", status=status)
    if status in (400, 401, 403):
        hint = (data or {}).get("hint") or (data or {}).get("detail") or (data or {}).get("title") or ""
        raise KommoAuthError(f"token grant refused ({status}): {hint}"[:300], status=status, hint=hint)
    if status != 200 or not isinstance(data, dict) or not data.get("access_token"):
        raise KommoError(f"unexpected token endpoint answer {status}", status=status)
    return TokenPair(data["access_token"], data.get("refresh_token"), data.get("expires_in"))


class TokenManager:
    def __init__(self, *, settings: KommoSettings, http: SessionProvider, accounts: KommoAccountRepository,
                 keyring: Keyring, redis: aioredis.Redis, notifications: NotificationOutbox,
                 refresh_margin_s: float = 300, lock_timeout_s: float = 30) -> None:
        self.settings = settings
        self.http = http
        self.accounts = accounts
        self.keyring = keyring
        self.redis = redis
        self.notifications = notifications
        self.margin = timedelta(seconds=refresh_margin_s)
        self.lock_timeout_s = lock_timeout_s
        self._inflight: dict[str, asyncio.Future] = {}
        self.refresh_count = 0  # grants this process made (observability, tests)

    def secret(self, account: KommoAccount, name: str) -> str | None:
        envelope = account.secrets.get(name)
        return self.keyring.decrypt(account.org_id, name, envelope) if envelope else None

    def _expiring(self, account: KommoAccount, min_validity: timedelta | None = None) -> bool:
        return (account.auth_kind == AuthKind.OAUTH and account.expires_at is not None
                and aware(account.expires_at) - utcnow() < (min_validity or self.margin))

    async def access_token(self, account: KommoAccount) -> str:
        token = self.secret(account, "access_token")
        if not token:
            raise KommoNotConnected("no access token stored for this Kommo connection")
        if self._expiring(account):
            return await self.refresh(account)
        return token

    async def handle_unauthorized(self, account: KommoAccount, rejected: str) -> str:
        """Kommo answered 401 to `rejected`: refresh once (OAuth) or ask for re-auth (long-lived)."""
        if account.auth_kind == AuthKind.LONG_LIVED:
            await self.mark_needs_reauth(account, "the long-lived token was rejected (401)")
            raise KommoTokenRevoked("the long-lived Kommo token is expired or revoked; connect again")
        return await self.refresh(account, rejected=rejected)

    async def refresh(self, account: KommoAccount, rejected: str | None = None,
                      min_validity: timedelta | None = None) -> str:
        """Return a token valid for at least `min_validity` (default: the refresh margin)."""
        running = self._inflight.get(account.id)
        if running is None:
            running = asyncio.ensure_future(self._refresh_locked(account, rejected, min_validity))
            self._inflight[account.id] = running
            running.add_done_callback(lambda _f, k=account.id: self._inflight.pop(k, None))
        token, fresh = await asyncio.shield(running)
        _adopt(account, fresh)
        return token

    async def _refresh_locked(self, seen: KommoAccount, rejected: str | None,
                              min_validity: timedelta | None) -> tuple[str, KommoAccount]:
        # Renewed while the refresh runs: a slow grant (Kommo taking its time, retries) must not
        # outlive the lock and let a second process spend the same single-use refresh token.
        async with renewable_lock(self.redis, f"kommo:refresh:{seen.id}", hold_s=self.lock_timeout_s,
                                  wait_s=self.lock_timeout_s + 5) as acquired:
            if not acquired:
                raise KommoUnavailable("another process holds the token refresh lock too long")
            return await self._refresh_held(seen, rejected, min_validity)

    async def _refresh_held(self, seen: KommoAccount, rejected: str | None,
                            min_validity: timedelta | None) -> tuple[str, KommoAccount]:
        current = await self.accounts.get(seen.org_id, seen.id)
        if current is None:
            raise KommoNotConnected("the Kommo connection was removed")
        if current.status == ConnectionStatus.NEEDS_REAUTH:
            raise KommoTokenRevoked("the Kommo connection needs to be authorised again")
        stored = self.secret(current, "access_token")
        if stored and stored != rejected and not self._expiring(current, min_validity):
            return stored, current  # refreshed meanwhile by another worker: reuse it
        refresh_token = self.secret(current, "refresh_token")
        if not refresh_token:
            await self.mark_needs_reauth(current, "no refresh token stored")
            raise KommoTokenRevoked("no refresh token stored; connect again")
        pair = await self._grant_refresh(current, refresh_token)
        changes = {"expires_at": utcnow() + timedelta(seconds=pair.expires_in or 86400),
                   "status": ConnectionStatus.ACTIVE, "status_reason": None}
        stored_acc = await self.accounts.store_tokens(
            current.org_id, current.id, current.token_version,
            seal(self.keyring, current.org_id, {"access_token": pair.access_token,
                                                "refresh_token": pair.refresh_token}), changes)
        if stored_acc is None:  # a writer bypassed the lock: trust what is stored
            latest = await self.accounts.get(current.org_id, current.id)
            return self.secret(latest, "access_token"), latest
        log.info("kommo token refreshed", org_id=current.org_id, version=stored_acc.token_version)
        return pair.access_token, stored_acc

    async def _grant_refresh(self, account: KommoAccount, refresh_token: str) -> TokenPair:
        try:
            return await self._grant_at_host(account, refresh_token)
        except (KommoAuthError, KommoNotFound) as exc:
            # An account renamed in Kommo answers nowhere at its old host: ask Kommo where it
            # lives now (the official SDK does the same) and refresh there, once.
            refused = exc
            if await self._follow_renamed_subdomain(account, refresh_token):
                try:
                    return await self._grant_at_host(account, refresh_token)
                except (KommoAuthError, KommoNotFound) as again:
                    refused = again
        hint = refused.params.get("hint") if isinstance(refused, KommoAuthError) else None
        await self.mark_needs_reauth(account, f"refresh token rejected: {hint or refused}")
        raise KommoTokenRevoked("Kommo revoked the refresh token; an admin must connect again") from None

    async def _grant_at_host(self, account: KommoAccount, refresh_token: str) -> TokenPair:
        # A lost response leaves the old refresh token valid (Kommo docs): retrying with it is safe.
        async for attempt in AsyncRetrying(
                retry=retry_if_exception_type((KommoUnavailable, KommoServerError)),
                wait=wait_exponential_jitter(multiplier=0.3, max=5), stop=stop_after_attempt(3), reraise=True):
            with attempt:
                self.refresh_count += 1
                return await token_grant(self.http, self.settings, account.host,
                                         {"grant_type": "refresh_token", "refresh_token": refresh_token})
        raise AssertionError("unreachable")

    async def _follow_renamed_subdomain(self, account: KommoAccount, refresh_token: str) -> bool:
        """`GET https://{api_domain}/oauth2/account/current/subdomain` with `X-Refresh-Token`
        names the account's current subdomain. If it moved, store the new host (and tell the
        admins) and return True; False when the token has no `api_domain` or nothing moved."""
        domain = api_domain(self.secret(account, "access_token"))
        if domain is None:
            return False
        session = await self.http.get()
        try:
            async with session.get(f"{host_base(self.settings, domain)}/oauth2/account/current/subdomain",
                                   headers={"X-Refresh-Token": refresh_token,
                                            **host_headers(self.settings, domain)}) as resp:
                found = await resp.json(content_type=None) if resp.status == 200 else None
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise KommoUnavailable(f"{domain} did not answer the subdomain lookup: {plain_reason(exc)}") from None
        if not isinstance(found, dict) or not isinstance(found.get("subdomain"), str) or not found["subdomain"]:
            return False
        if account.account_id and str(found.get("id") or account.account_id) != str(account.account_id):
            log.warning("kommo subdomain lookup named another account", org_id=account.org_id)
            return False
        base_domain = lookup_base_domain(found, account.base_domain)
        if (found["subdomain"], base_domain) == (account.subdomain, account.base_domain):
            return False
        await self.move_host(account, found["subdomain"], base_domain)
        return True

    async def move_host(self, account: KommoAccount, subdomain: str, base_domain: str, *,
                         reactivate: bool = False) -> None:
        old_host = account.host
        changes: dict[str, Any] = {"subdomain": subdomain, "base_domain": base_domain}
        if reactivate:
            changes.update(status=ConnectionStatus.ACTIVE, status_reason=None)
            account.status, account.status_reason = ConnectionStatus.ACTIVE, None
        await self.accounts.update(account.org_id, account.id, changes)
        account.subdomain, account.base_domain = subdomain, base_domain
        log.warning("kommo account renamed", org_id=account.org_id, old=old_host, new=account.host)
        await self.notifications.publish(account.org_id, "kommo_subdomain_changed", old_host=old_host,
                                         new_host=account.host,
                                         dedupe_key=f"kommo_subdomain_changed:{account.id}:{account.host}")

    def claim_subdomain_probe(self, account: KommoAccount, subdomain: str | None) -> str | None:
        """The reported subdomain, normalised, when it is worth checking whether `account` now
        lives there (see `KommoClient.follow_reported_subdomain`); None otherwise."""
        reported = (subdomain or "").strip().lower()
        if (not _SUBDOMAIN.fullmatch(reported) or reported == account.subdomain.lower() or not account.account_id
                or account.status not in (ConnectionStatus.ACTIVE, ConnectionStatus.NEEDS_REAUTH)):
            return None
        return reported

    async def first_probe(self, account: KommoAccount, subdomain: str) -> bool:
        """True for the first check of this name for this account in `SUBDOMAIN_PROBE_TTL_S`
        (across processes), so a stream of webhooks naming it costs one call."""
        return bool(await self.redis.set(f"kommo:subdomain_probe:{account.id}:{subdomain}", 1, nx=True,
                                         ex=SUBDOMAIN_PROBE_TTL_S))

    async def mark_needs_reauth(self, account: KommoAccount, reason: str) -> None:
        log.warning("kommo needs re-auth", org_id=account.org_id, reason=reason)
        await self.accounts.update(account.org_id, account.id, {
            "status": ConnectionStatus.NEEDS_REAUTH, "status_reason": reason[:300]})
        account.status = ConnectionStatus.NEEDS_REAUTH
        await self.notifications.publish(account.org_id, "kommo_needs_reauth", subdomain=account.subdomain,
                                         reason=reason[:300],
                                         dedupe_key=f"kommo_needs_reauth:{account.id}:{account.token_version}")

    async def refresh_expiring(self, within: timedelta) -> dict[str, str]:
        """Beat job: refresh OAuth pairs that expire within `within`; returns org_id -> outcome."""
        outcomes: dict[str, str] = {}
        for account in await self.accounts.all_accounts():
            if (account.auth_kind != AuthKind.OAUTH or account.status != ConnectionStatus.ACTIVE
                    or account.expires_at is None or aware(account.expires_at) - utcnow() > within):
                continue
            try:
                await self.refresh(account, min_validity=within)
                outcomes[account.org_id] = "refreshed"
            except KommoError as exc:
                outcomes[account.org_id] = f"failed: {exc.code}"
        return outcomes


_SUBDOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
SUBDOMAIN_PROBE_TTL_S = 600


def _adopt(target: KommoAccount, fresh: KommoAccount) -> None:
    """Callers hold their own copy of the account; give it the stored pair and version."""
    for name in ("secrets", "expires_at", "token_version", "status", "status_reason", "subdomain", "base_domain"):
        setattr(target, name, getattr(fresh, name))
