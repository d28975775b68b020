"""OAuth 2.0 connect: authorize URL with a signed, single-use, expiring `state`, and the callback.

`state` = base64url(claims) "." base64url(HMAC-SHA256). The HMAC key is derived from the keyring
key named in the claims (rotation-safe); single use comes from a Redis nonce deleted on first
use. The code is exchanged at the account host from `referer`, never at www.kommo.com.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import redis.asyncio as aioredis

from core.config import KommoSettings
from core.errors import ConfigurationError, InvalidInput
from core.kommo.auth.connections import ConnectResult, KommoConnections, parse_account_host
from core.kommo.auth.tokens import token_grant
from core.kommo.errors import InvalidOAuthState
from core.kommo.http.session import SessionProvider
from core.security.keyring import Keyring

STATE_TTL_S = 900


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class CallbackOutcome:
    status: str  # connected | denied
    org_id: str
    operator_id: str
    result: ConnectResult | None = None


class KommoOAuth:
    def __init__(self, *, settings: KommoSettings, redis: aioredis.Redis, keyring: Keyring,
                 http: SessionProvider, connections: KommoConnections, authorize_base: str | None = None) -> None:
        self.settings = settings
        self.redis = redis
        self.keyring = keyring
        self.http = http
        self.connections = connections
        self.authorize_base = authorize_base or settings.oauth_authorize_url  # None: per the account's domain

    def _key(self, kid: str) -> bytes:
        master = self.keyring.keys.get(kid)
        if master is None:
            raise InvalidOAuthState("state was signed with a retired key")
        return hmac.new(master, b"kommo-oauth-state-v1", hashlib.sha256).digest()

    async def consent_page(self, org_id: str, domain: str | None = None) -> str:
        """Kommo and amoCRM are separate installations, each with its own consent page: an
        amoCRM (`*.amocrm.ru`) admin sent to www.kommo.com cannot find their account. The
        domain is the caller's choice, else the org's connected account's, else the default."""
        if self.authorize_base:
            return self.authorize_base
        if domain is None:
            account = await self.connections.storage.kommo_accounts.for_org(org_id)
            domain = account.base_domain if account else self.settings.default_base_domain
        domain = (domain or "").strip().lower().removeprefix("www.")
        if domain == "amocrm.com":  # the old international domain is Kommo now
            domain = "kommo.com"
        if domain not in ("kommo.com", "amocrm.ru"):
            raise InvalidInput(f"the account's domain must be kommo.com or amocrm.ru, not {domain[:40]!r}")
        return f"https://www.{domain}/oauth"

    async def authorize_url(self, org_id: str, operator_id: str | int, *, domain: str | None = None) -> str:
        if not self.settings.client_id:
            raise ConfigurationError("KOMMO_CLIENT_ID is not configured")
        base = await self.consent_page(org_id, domain)
        nonce = secrets.token_urlsafe(16)
        claims = {"o": org_id, "u": str(operator_id), "n": nonce, "e": int(time.time()) + STATE_TTL_S,
                  "k": self.keyring.primary}
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = _b64(hmac.new(self._key(self.keyring.primary), payload.encode(), hashlib.sha256).digest())
        await self.redis.set(f"kommo:oauth:state:{nonce}", org_id, ex=STATE_TTL_S)
        query = urlencode({"client_id": self.settings.client_id, "state": f"{payload}.{sig}", "mode": "post_message"})
        return f"{base}?{query}"

    async def consume_state(self, state: str) -> dict:
        try:
            payload, sig = state.split(".")
            claims = json.loads(_unb64(payload))
            expected = hmac.new(self._key(claims["k"]), payload.encode(), hashlib.sha256).digest()
            given = _unb64(sig)  # bad base64 (binascii.Error is a ValueError) is a malformed state
            expired = float(claims["e"]) < time.time()
            nonce = str(claims["n"])
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError, OverflowError):
            raise InvalidOAuthState("malformed state") from None
        if not hmac.compare_digest(given, expected):
            raise InvalidOAuthState("state signature does not match")
        if expired:
            raise InvalidOAuthState("state expired")
        if await self.redis.delete(f"kommo:oauth:state:{nonce}") != 1:
            raise InvalidOAuthState("state was already used")
        return claims

    async def handle_callback(self, *, code: str | None, state: str | None, referer: str | None,
                              error: str | None = None) -> CallbackOutcome:
        if not state:
            raise InvalidOAuthState("missing state")
        claims = await self.consume_state(state)
        if error:
            return CallbackOutcome("denied", claims["o"], claims["u"])
        if not code or not referer:
            raise InvalidInput("missing code or referer")
        subdomain, base_domain = parse_account_host(referer, require_domain=True)
        host = f"{subdomain}.{base_domain}"
        pair = await token_grant(self.http, self.settings, host,
                                 {"grant_type": "authorization_code", "code": code})
        result = await self.connections.connect_oauth(claims["o"], host, pair)
        return CallbackOutcome("connected", claims["o"], claims["u"], result)
