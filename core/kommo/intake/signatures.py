"""Signatures on inbound hooks (Salesbot JWT, Chats API X-Signature) and on outbound amojo calls."""

from __future__ import annotations

import hashlib
import hmac
from email.utils import formatdate
from typing import Any

import jwt

from core.kommo.errors import InvalidWebhook

SALESBOT_ALGORITHMS = ["HS256", "HS512"]  # the SDK signs HS512, practitioners saw HS256


def verify_salesbot_token(token: str, secret: str) -> dict[str, Any]:
    """The `token` of a widget_request, signed with the integration secret (alg taken from the
    header, but only from our allow-list, so `none` or RS* tricks are refused)."""
    if not token or not isinstance(token, str):
        raise InvalidWebhook("missing salesbot token")
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") not in SALESBOT_ALGORITHMS:
            raise InvalidWebhook("salesbot token algorithm not allowed")
        return jwt.decode(token, secret, algorithms=[header["alg"]],
                          options={"verify_aud": False, "require": ["exp"]})
    except jwt.ExpiredSignatureError:
        raise InvalidWebhook("salesbot token expired") from None
    except jwt.InvalidTokenError:
        raise InvalidWebhook("salesbot token signature invalid") from None


def chats_body_signature(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def verify_chats_signature(body: bytes, header: str | None, secret: str) -> None:
    # Compared as bytes: `compare_digest` refuses a str with non-ASCII characters (a TypeError,
    # which was a 500), and a header is whatever the sender put there.
    given = (header or "").strip().lower().encode("utf-8", errors="replace")
    if not given or not hmac.compare_digest(given, chats_body_signature(body, secret).encode()):
        raise InvalidWebhook("bad X-Signature")


def amojo_headers(method: str, path: str, body: bytes, secret: str) -> dict[str, str]:
    """Headers of a signed Chats API request: Date, Content-Type, Content-MD5, X-Signature over
    METHOD, body md5, content type, date and path (no host, no query)."""
    content_type = "application/json"
    date = formatdate(usegmt=False).replace("-0000", "+0000")
    md5 = hashlib.md5(body).hexdigest()
    to_sign = "\n".join([method.upper(), md5, content_type, date, path])
    return {"Date": date, "Content-Type": content_type, "Content-MD5": md5,
            "X-Signature": hmac.new(secret.encode(), to_sign.encode(), hashlib.sha1).hexdigest()}
