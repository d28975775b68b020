"""Chats API (amojo) calls for our own custom channel: signed JSON requests (see signatures.py)."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from core.config import KommoSettings
from core.errors import ConfigurationError, plain_reason
from core.kommo.errors import KommoAuthError, KommoError, KommoNotFound, KommoServerError, KommoUnavailable
from core.kommo.http.ratelimit import RateLimiter
from core.kommo.http.session import SessionProvider
from core.kommo.intake.signatures import amojo_headers
from core.models.kommo import KommoAccount


class ChatsClient:
    def __init__(self, settings: KommoSettings, http: SessionProvider, limiter: RateLimiter) -> None:
        self.settings = settings
        self.http = http
        self.limiter = limiter

    def base(self, account: KommoAccount) -> str:
        if self.settings.amojo_base_url or self.settings.api_base_url:
            return (self.settings.amojo_base_url or self.settings.api_base_url).rstrip("/")
        return "https://amojo.amocrm.ru" if account.base_domain == "amocrm.ru" else "https://amojo.kommo.com"

    async def send_text(self, account: KommoAccount, *, conversation_id: str, text: str, msgid: str,
                        receiver: dict[str, Any], conversation_ref_id: str | None = None) -> dict[str, Any]:
        secret, bot_id = self.settings.chats_channel_secret, self.settings.chats_bot_id
        if not (secret and bot_id and account.chats_scope_id):
            raise ConfigurationError("the Chats API channel is not configured for this account")
        now = time.time()
        payload: dict[str, Any] = {
            "timestamp": int(now), "msec_timestamp": int(now * 1000), "msgid": msgid,
            "conversation_id": conversation_id, "silent": False,
            "sender": {"ref_id": bot_id, "name": "AI assistant"}, "receiver": receiver,
            "message": {"type": "text", "text": text},
        }
        if conversation_ref_id:
            payload["conversation_ref_id"] = conversation_ref_id
        body = json.dumps({"event_type": "new_message", "payload": payload}, ensure_ascii=False).encode()
        path = f"/v2/origin/custom/{account.chats_scope_id}"
        await self.limiter.acquire(f"amojo:{account.id}")
        session = await self.http.get()
        try:  # the exact bytes we hashed are what we send
            async with session.post(self.base(account) + path, data=body,
                                    headers=amojo_headers("POST", path, body, secret.get_secret_value())) as r:
                status, data = r.status, await r.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise KommoUnavailable(f"Chats API did not answer: {plain_reason(exc)}") from None
        if status == 200:
            return (data or {}).get("new_message", {})
        detail = (data or {}).get("error_description") or (data or {}).get("error_code") or ""
        if status in (401, 403):
            raise KommoAuthError(f"Chats API refused the signature: {detail}", status=status)
        if status == 404:
            raise KommoNotFound(f"Chats API: channel not connected ({detail})", status=404)
        if status >= 500:
            raise KommoServerError(f"Chats API error {status}", status=status)
        raise KommoError(f"Chats API answered {status}: {detail}", status=status)
