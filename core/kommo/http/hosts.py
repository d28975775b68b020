"""Which host a call for an account goes to, and what a token says about its account's host.

Calls go to the account host (`{subdomain}.kommo.com`, or `.amocrm.ru`), never www.kommo.com.
`KOMMO_API_BASE_URL` sends every account's calls to one other host (a proxy, or the test fake);
the account host a call was meant for then travels in `X-Forwarded-Host`, so that host can still
tell accounts apart.

Kommo access tokens are JWTs; those issued since 2024-08-21 carry an `api_domain` claim, the
host of `GET /oauth2/account/current/subdomain`, which tells a renamed account's new subdomain.
"""

from __future__ import annotations

import base64
import binascii
import json

from core.config import KommoSettings

BASE_DOMAINS = ("kommo.com", "amocrm.ru", "amocrm.com")
_TOP_LEVEL = {"com": "kommo.com", "ru": "amocrm.ru"}


def lookup_base_domain(found: dict, current: str) -> str:
    """The shared base domain (`kommo.com`, `amocrm.ru`) from Kommo's subdomain lookup
    `{id, subdomain, domain, top_level_domain}`. `domain` is the account's whole host
    (`newname.amocrm.ru`; the official SDK passes it to its host setter), so storing it as the
    base domain sent every call to `newname.newname.amocrm.ru`. Anything unrecognised keeps
    `current`."""
    subdomain = str(found.get("subdomain") or "").lower()
    domain = str(found.get("domain") or "").lower().strip(".")
    if subdomain and domain.startswith(subdomain + "."):
        domain = domain[len(subdomain) + 1:]
    if domain in BASE_DOMAINS:
        return domain
    return _TOP_LEVEL.get(str(found.get("top_level_domain") or "").lower().strip("."), current)


def host_base(settings: KommoSettings, host: str) -> str:
    return (settings.api_base_url or f"https://{host}").rstrip("/")


def host_headers(settings: KommoSettings, host: str) -> dict[str, str]:
    return {"X-Forwarded-Host": host} if settings.api_base_url else {}


def token_claims(token: str | None) -> dict:
    """The payload of a JWT access token, unverified (only Kommo can verify it, and we only read
    a host name from it); {} for anything that is not a JWT."""
    parts = (token or "").split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def api_domain(token: str | None) -> str | None:
    domain = token_claims(token).get("api_domain")
    return domain if isinstance(domain, str) and "." in domain and "/" not in domain else None
