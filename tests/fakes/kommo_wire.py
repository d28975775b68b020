"""Wire-level pieces of the fake Kommo: problem+json errors and the Chats API (amojo) signatures."""

from __future__ import annotations

import hashlib
import hmac
import time
from email.utils import parsedate_to_datetime
from typing import Any

from aiohttp import web

CHANNEL_ID = "fake-channel"
CHANNEL_SECRET = "fake-channel-secret"


def problem(status: int, title: str, detail: str = "", **extra: Any) -> web.Response:
    body = {"title": title, "type": f"https://httpstatus.es/{status}", "status": status, "detail": detail, **extra}
    return web.json_response(body, status=status, content_type="application/problem+json")


def sign_amojo(method: str, path: str, body: bytes, date: str, secret: str = CHANNEL_SECRET,
               content_type: str = "application/json") -> tuple[str, str]:
    md5 = hashlib.md5(body).hexdigest()
    sig = hmac.new(secret.encode(), "\n".join([method.upper(), md5, content_type, date, path]).encode(),
                   hashlib.sha1).hexdigest()
    return md5, sig


def check_amojo_signature(request: web.Request, body: bytes) -> str | None:
    date = request.headers.get("Date", "")
    try:
        if abs(time.time() - parsedate_to_datetime(date).timestamp()) > 900:
            return "date too old"
    except (TypeError, ValueError):
        return "bad Date header"
    md5, sig = sign_amojo(request.method, request.path, body, date,
                          content_type=request.headers.get("Content-Type", ""))
    if request.headers.get("Content-MD5", "").lower() != md5:
        return "Content-MD5 mismatch"
    if not hmac.compare_digest(request.headers.get("X-Signature", "").lower(), sig):
        return "bad signature"
    return None
