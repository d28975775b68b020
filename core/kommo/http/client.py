"""`KommoClient`: authorised, paced, retried JSON calls to one account's API v4.

- Base URL per account (`https://{subdomain}.{base_domain}`); `settings.api_base_url` overrides.
- Every call waits for the account's slot in the Redis-shared `RateLimiter`.
- 429/5xx/timeouts are retried with exponential backoff and jitter (tenacity); a 429's
  `retry_after` pauses the calling IP's budget for every account and process. POSTs are retried on 429 only unless the
  caller says the call is idempotent: after a timeout a POST may have landed (the action journal
  decides about resending).
- 401: one retry with a refreshed token (`TokenManager` handles rotation and re-auth alerts); a
  401 to the freshly refreshed token stops the connection (needs re-auth) and tells the admins.
- 403 means "this user may not" as often as "Kommo blocked us": admin-only calls (the users list,
  webhooks) say `forbidden_ok` and get `KommoForbidden`, nothing else happens. Any other 403 is
  counted per account (Redis, all processes); a single one fails only its call, the
  `forbidden_block_after`-th within `forbidden_window_s` marks the account BLOCKED, tells the
  admins why, and no further calls are made.
- 204 = no content -> `None` (lists: empty).
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import redis.asyncio as aioredis
import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, stop_before_delay, wait_exponential_jitter

from core import metrics
from core.clock import utcnow
from core.config import KommoSettings
from core.errors import plain_reason
from core.kommo.errors import (
    TRANSIENT,
    KommoAuthError,
    KommoBlocked,
    KommoError,
    KommoForbidden,
    KommoNotConnected,
    KommoNotFound,
    KommoRateLimited,
    KommoServerError,
    KommoTokenRevoked,
    KommoUnavailable,
    KommoValidationError,
)
from core.kommo.http.hosts import host_base, host_headers
from core.kommo.http.ratelimit import RateLimiter
from core.kommo.http.session import SessionProvider
from core.models.kommo import ConnectionStatus, KommoAccount
from core.storage.notifications import NotificationOutbox
from core.storage.repositories.kommo_accounts import KommoAccountRepository

log = structlog.get_logger("kommo.client")
PAGE_LIMIT = 250
MAX_RETRY_AFTER_S = 30.0  # longer pauses are left to the caller (a Celery retry), not a sleeping call
MAX_PAUSE_S = 300.0  # Kommo's documented retry_after; a longer one from a confused gateway is not obeyed


def base_url(settings: KommoSettings, account: KommoAccount) -> str:
    return host_base(settings, account.host)


def _problem(body: Any) -> str:
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("title") or body.get("hint") or ""
        errors = body.get("validation-errors")
        if errors:
            detail = f"{detail} {json.dumps(errors, ensure_ascii=False)[:300]}"
        return str(detail)[:400]
    return str(body)[:200]


class KommoClient:
    def __init__(self, *, settings: KommoSettings, http: SessionProvider, limiter: RateLimiter,
                 tokens, accounts: KommoAccountRepository, notifications: NotificationOutbox,
                 redis: aioredis.Redis | None = None, max_attempts: int = 5) -> None:
        self.settings = settings
        self.redis = redis if redis is not None else limiter.redis
        self.http = http
        self.limiter = limiter
        self.tokens = tokens
        self.accounts = accounts
        self.notifications = notifications
        self.max_attempts = max_attempts
        # account id -> the token version it was blocked under: reconnecting (a new version) lifts it
        # in every process, not only in the one the operator used.
        self._blocked: dict[str, int] = {}

    async def request(self, account: KommoAccount, method: str, path: str, *,
                      params: dict[str, Any] | None = None, json_body: Any = None,
                      idempotent: bool | None = None, forbidden_ok: bool = False) -> Any:
        """`path` is `/api/v4/...` (query allowed); returns parsed JSON or None for 204."""
        if account.status != ConnectionStatus.ACTIVE or self._blocked.get(account.id) == account.token_version:
            raise KommoNotConnected(f"Kommo connection is {account.status.value}; calls are stopped",
                                    status_reason=account.status_reason)
        idempotent = method.upper() in ("GET", "PATCH", "PUT", "DELETE") if idempotent is None else idempotent
        token = await self.tokens.access_token(account)
        try:
            return await self._retrying(account, method, path, params, json_body, token, idempotent, forbidden_ok)
        except KommoAuthError:
            token = await self.tokens.handle_unauthorized(account, token)
        try:
            return await self._retrying(account, method, path, params, json_body, token, idempotent, forbidden_ok)
        except KommoAuthError as exc:
            # Kommo refused the token it has just issued: retrying cannot help, an admin must look.
            await self.tokens.mark_needs_reauth(account, f"Kommo refused a freshly refreshed token (401): "
                                                         f"{exc.params.get('hint') or 'no reason given'}")
            raise KommoTokenRevoked("Kommo refused the refreshed token; an admin must connect again") from None

    async def follow_reported_subdomain(self, account: KommoAccount, subdomain: str | None) -> bool:
        """A webhook names its account's subdomain (`account[subdomain]`). When that is not the
        stored one, the account may have been renamed in Kommo: if our own token answers at the
        reported host for the same account id, calls move there and the admins are told. This is
        how a connection on a long-lived token, which has no refresh token to ask Kommo with,
        follows a rename; a connection a call at the old host already marked "needs re-auth" is
        active again. The check is one GET paced by the shared rate limit, with no refresh, and a 401
        or 403 there neither re-auths nor blocks the real connection (that host may be nobody's);
        a name nothing answers for changes nothing.
        Each name is checked once per `SUBDOMAIN_PROBE_TTL_S` per account."""
        reported = self.tokens.claim_subdomain_probe(account, subdomain)
        if reported is None or not await self.tokens.first_probe(account, reported):
            return False
        candidate = account.model_copy(update={"subdomain": reported})
        token = self.tokens.secret(account, "access_token")
        try:  # forbidden_ok: a 403 at a host a webhook named must not block the real connection
            found = await self._retrying(candidate, "GET", "/api/v4/account", None, None, token, True, True)
        except KommoError as exc:
            log.warning("kommo reported subdomain did not open with our token", org_id=account.org_id,
                        host=candidate.host, error=exc.code)
            return False
        if not isinstance(found, dict) or str(found.get("id")) != str(account.account_id):
            log.warning("kommo reported subdomain is another account", org_id=account.org_id, host=candidate.host)
            return False
        await self.tokens.move_host(account, reported, account.base_domain,
                                    reactivate=account.status == ConnectionStatus.NEEDS_REAUTH)
        return True

    async def get_all(self, account: KommoAccount, path: str, key: str,
                      params: dict[str, Any] | None = None, max_pages: int = 200,
                      forbidden_ok: bool = False) -> list[dict[str, Any]]:
        """Follow `_links.next` with limit=250; 204 (nothing found) is an empty list."""
        items: list[dict[str, Any]] = []
        next_path: str | None = path
        query: dict[str, Any] | None = {**(params or {}), "limit": PAGE_LIMIT}
        for _ in range(max_pages):
            if next_path is None:
                break
            page = await self.request(account, "GET", next_path, params=query, forbidden_ok=forbidden_ok)
            if not page:
                break
            items.extend(page.get("_embedded", {}).get(key, []))
            href = (page.get("_links", {}).get("next") or {}).get("href")
            if not href:
                break
            parts = urlsplit(href)  # the host in the link is Kommo's: keep our base URL
            next_path, query = f"{parts.path}?{parts.query}" if parts.query else parts.path, None
        return items

    async def _retrying(self, account, method, path, params, json_body, token, idempotent, forbidden_ok):
        # The whole call, retries and Retry-After pauses included, ends within the budget: a
        # call still retrying past the resend staleness would be taken for a lost one.
        deadline = time.monotonic() + self.settings.retry_budget_s

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, KommoRateLimited):
                pause = exc.retry_after or 0
                return pause <= MAX_RETRY_AFTER_S and time.monotonic() + pause < deadline
            return idempotent and isinstance(exc, TRANSIENT)

        backoff = wait_exponential_jitter(multiplier=0.5, max=20, jitter=0.5)

        def wait(state) -> float:
            exc = state.outcome.exception()
            if isinstance(exc, KommoRateLimited) and exc.retry_after:
                return 0.0  # the limiter was paused for retry_after: the next acquire waits it out
            return backoff(state)

        async for attempt in AsyncRetrying(retry=retry_if_exception(retryable), wait=wait,
                                           stop=stop_after_attempt(self.max_attempts)
                                           | stop_before_delay(self.settings.retry_budget_s), reraise=True):
            with attempt:
                return await self._once(account, method, path, params, json_body, token, forbidden_ok)

    async def _once(self, account, method, path, params, json_body, token, forbidden_ok):
        metrics.KOMMO_WAIT.observe(await self.limiter.acquire(account.id))
        session = await self.http.get()
        url = base_url(self.settings, account) + path
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
                   **host_headers(self.settings, account.host)}
        try:
            async with session.request(method, url, params=params, json=json_body, headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
                retry_header = resp.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ClientError) as exc:
            metrics.KOMMO_CALLS.labels(metrics.bounded(method, metrics.HTTP_METHODS), "no_answer").inc()
            raise KommoUnavailable(f"Kommo did not answer: {plain_reason(exc)}") from None
        metrics.KOMMO_CALLS.labels(metrics.bounded(method, metrics.HTTP_METHODS), metrics.status_class(status)).inc()
        if status == 204 or (200 <= status < 300 and not raw.strip()):
            return None
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw[:200].decode(errors="replace")  # gateways answer 429/5xx with HTML
        if 200 <= status < 300:
            return body
        await self._raise_for(account, status, body, retry_header, forbidden_ok, f"{method} {path.split('?')[0]}")

    async def _raise_for(self, account, status, body, retry_header, forbidden_ok, what):
        detail = _problem(body)
        if status == 401:
            raise KommoAuthError(f"{what}: unauthorized ({detail})", status=401, hint=_problem(body))
        if status == 429:
            retry_after = None
            if isinstance(body, dict) and body.get("retry_after") is not None:
                retry_after = float(body["retry_after"])
            elif retry_header and retry_header.isdigit():
                retry_after = float(retry_header)
            await self.limiter.pause(min(retry_after or 1.0, MAX_PAUSE_S))  # Kommo counts the IP: all accounts wait
            raise KommoRateLimited(f"{what}: rate limited", retry_after=retry_after)
        if status == 403:
            if forbidden_ok:
                raise KommoForbidden(f"{what}: forbidden for this user ({detail})", status=403)
            strikes = await self._forbidden_strike(account)
            if strikes < self.settings.forbidden_block_after:
                raise KommoForbidden(f"{what}: Kommo refused it (403, {strikes} of "
                                     f"{self.settings.forbidden_block_after} before the account is stopped)",
                                     status=403)
            await self._block(account, what, detail, strikes)
            raise KommoBlocked(f"{what}: Kommo blocked this account's requests (403)", status=403)
        if status == 404:
            raise KommoNotFound(f"{what}: not found", status=404)
        if status >= 500:
            raise KommoServerError(f"{what}: Kommo server error {status}", status=status)
        raise KommoValidationError(f"{what}: refused with {status}: {detail}", status=status, detail=detail)

    async def _forbidden_strike(self, account: KommoAccount) -> int:
        """Count one 403 for the account; the count lives `forbidden_window_s` from the first."""
        key = f"kommo:forbidden:{account.id}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, int(self.settings.forbidden_window_s), nx=True)
            count, _ = await pipe.execute()
        return int(count)

    async def _block(self, account: KommoAccount, what: str, detail: str, strikes: int) -> None:
        self._blocked[account.id] = account.token_version
        await self.redis.delete(f"kommo:forbidden:{account.id}")  # a reconnected account starts counting afresh
        minutes = max(1, round(self.settings.forbidden_window_s / 60))
        # Said in words the operator can act on: the two causes Kommo documents for a 403.
        why = (f"Kommo answered 403 to {strikes} requests within {minutes} min (last: {what}"
               f"{', ' + detail if detail else ''}). Either the connected user lost access rights to leads, "
               f"or Kommo blocked our server's IP after too many requests. Calls to this account are "
               f"stopped; check the user's rights in Kommo, then reconnect.")
        log.warning("kommo account blocked", org_id=account.org_id, account=account.id, detail=detail,
                    strikes=strikes)
        await self.accounts.update(account.org_id, account.id, {
            "status": ConnectionStatus.BLOCKED, "status_reason": why[:300]})
        await self.notifications.publish(
            account.org_id, "kommo_blocked", subdomain=account.subdomain, count=strikes, minutes=minutes,
            detail=why[:400],
            dedupe_key=f"kommo_blocked:{account.id}:{utcnow():%Y%m%d%H}")

    def unblock(self, account_id: str) -> None:
        self._blocked.pop(account_id, None)
