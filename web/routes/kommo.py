"""Kommo routes: standard webhooks, Salesbot widget_request, Chats API hooks, OAuth callback.

Thin: read the body within the size limit, call the core intake service, translate its errors
(unknown token 404, not-a-webhook 400 with a short reason, oversized 413). Kommo gives a
webhook 2 s and switches it off after too many bad answers, so anything well-formed gets 200.
"""

from __future__ import annotations

import asyncio
import functools
import html
import json

import structlog
from aiohttp import web

from core import metrics
from core.errors import InvalidInput, KommoAgentError
from core.kommo.errors import InvalidOAuthState, InvalidWebhook, UnknownHook
from core.kommo.intake.limits import WebhookRateLimited
from core.kommo.intake.parser import TooManyItems
from core.kommo.service import KommoService
from web.keys import SERVICES

KOMMO = web.AppKey("kommo", KommoService)
log = structlog.get_logger("web.kommo")


class BodyTooLarge(Exception):
    pass


async def read_limited(request: web.Request, limit: int) -> bytes:
    """413 before reading the whole body: trust a declared length, and count streamed bytes."""
    declared = request.content_length
    if declared is not None:
        if declared > limit:
            raise BodyTooLarge
        try:  # the usual case (Kommo declares the length): one read, no chunk loop
            return await request.content.readexactly(declared)
        except asyncio.IncompleteReadError:
            raise InvalidWebhook("body shorter than its Content-Length") from None
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _reject(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"ok": False, "error": reason}, status=status, headers=headers)


def client_address(request: web.Request) -> str:
    """The peer the unknown-token limit counts (the socket's, never a header the client sets)."""
    return request.remote or "-"


async def _intake(request: web.Request, route: str, call) -> web.Response:
    kommo = request.app[KOMMO]
    try:
        # The body is read once, within the limit, and handed down as bytes.
        body = await read_limited(request, request.app[SERVICES].settings.kommo.max_webhook_body_bytes)
        result = await call(kommo.intake, body, client_address(request))
    except BodyTooLarge:
        metrics.WEBHOOKS.labels(route, "too_large").inc()
        return _reject(413, "body too large")
    except UnknownHook:
        metrics.WEBHOOKS.labels(route, "unknown_hook").inc()
        return _reject(404, "unknown hook")
    except WebhookRateLimited as exc:
        metrics.WEBHOOKS.labels(route, "rate_limited").inc()
        return _reject(429, exc.reason, {"Retry-After": str(int(exc.retry_after))})
    except TooManyItems as exc:
        metrics.WEBHOOKS.labels(route, "too_many_items").inc()
        return _reject(413, exc.reason)
    except InvalidWebhook as exc:
        metrics.WEBHOOKS.labels(route, "invalid").inc()
        log.warning("not a kommo webhook", route=request.path.split("/")[1:3], reason=exc.reason)
        return _reject(400, exc.reason)
    except Exception as exc:  # noqa: BLE001 - our own failure: Kommo retries a 503, no internals shown
        metrics.WEBHOOKS.labels(route, "unavailable").inc()
        log.error("webhook intake failed", route=request.path.split("/")[1:3], error=str(exc)[:300])
        return _reject(503, "temporarily unavailable, retry later")
    metrics.WEBHOOKS.labels(route, "accepted").inc()
    for outcome in ("accepted", "duplicates", "unhandled", "ignored"):
        if count := getattr(result, outcome):
            metrics.WEBHOOK_EVENTS.labels(outcome).inc(count)
    return _accepted(result.accepted, result.duplicates, result.unhandled, result.ignored)


@functools.lru_cache(maxsize=256)
def _body(accepted: int, duplicates: int, unhandled: int, ignored: int) -> bytes:
    return json.dumps({"ok": True, "accepted": accepted, "duplicates": duplicates, "unhandled": unhandled,
                       "ignored": ignored}).encode()


def _accepted(*counts: int) -> web.Response:
    # The same few answers over and over (one event, new): serialised once.
    return web.Response(body=_body(*counts), content_type="application/json")


async def kommo_webhook(request: web.Request) -> web.Response:
    token, ctype = request.match_info["hook_token"], request.headers.get("Content-Type", "")
    return await _intake(request, "kommo", lambda intake, body, client: intake.kommo_webhook(token, body, ctype, client))


async def salesbot_hook(request: web.Request) -> web.Response:
    token, ctype = request.match_info["hook_token"], request.headers.get("Content-Type", "")
    return await _intake(request, "salesbot", lambda intake, body, client: intake.salesbot(token, body, ctype, client))


async def chats_hook(request: web.Request) -> web.Response:
    scope, signature = request.match_info["scope_id"], request.headers.get("X-Signature")
    return await _intake(request, "chats", lambda intake, body, client: intake.chats(scope, body, signature, client))


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Kommo Agent</title></head>
<body style="font-family:sans-serif;max-width:36em;margin:3em auto"><h2>{title_ru}</h2><p>{text_ru}</p>
<hr><h2>{title_en}</h2><p>{text_en}</p></body></html>"""


def _page(status: int, title_ru: str, text_ru: str, title_en: str, text_en: str) -> web.Response:
    esc = {k: html.escape(v) for k, v in dict(title_ru=title_ru, text_ru=text_ru, title_en=title_en,
                                                  text_en=text_en).items()}
    return web.Response(status=status, text=_PAGE.format(**esc), content_type="text/html")


async def oauth_callback(request: web.Request) -> web.Response:
    q = request.query
    try:
        outcome = await request.app[KOMMO].oauth.handle_callback(
            code=q.get("code"), state=q.get("state"), referer=q.get("referer"), error=q.get("error"))
    except InvalidOAuthState as exc:
        return _page(400, "Ссылка недействительна", "Ссылка устарела или уже использована. Запросите новую в боте.",
                     "Link is not valid", f"The link expired or was already used ({exc}). Ask the bot for a new one.")
    except InvalidInput as exc:
        return _page(400, "Ошибка подключения", "Kommo прислал неполный ответ. Попробуйте ещё раз.",
                     "Connection failed", f"Kommo sent an incomplete answer ({exc}). Please try again.")
    except KommoAgentError as exc:
        log.warning("oauth code exchange failed", error=str(exc)[:200])
        return _page(502, "Ошибка подключения", "Не удалось получить доступ к Kommo. Попробуйте ещё раз.",
                     "Connection failed", "Could not obtain access from Kommo. Please try again.")
    if outcome.status == "connected" and outcome.result is not None:
        # The console tells the manager who asked (and the org's admins) through the outbox.
        account = outcome.result.account
        await request.app[SERVICES].storage.notifications.publish(
            outcome.org_id, "kommo_connected", dedupe_key=f"kommo_connected:{account.id}:{account.token_version}",
            host=account.host, operator_id=outcome.operator_id, webhook_registered=outcome.result.webhook_registered)
    if outcome.status == "denied":
        return _page(200, "Доступ не предоставлен", "Вы отказали в доступе. Kommo не подключён.",
                     "Access denied", "You declined access, so Kommo was not connected.")
    return _page(200, "Kommo подключён", "Готово! Можно закрыть это окно и вернуться в бот.",
                 "Kommo connected", "Done! You can close this window and return to the bot.")


async def _startup(app: web.Application) -> None:
    # The process's one Kommo area (its intake group-commits through the services' queue);
    # the services close it, after the app has stopped taking requests.
    app[KOMMO] = await app[SERVICES].kommo()


def setup(app: web.Application) -> None:
    app.on_startup.append(_startup)
    app.router.add_post("/webhooks/kommo/{hook_token}", kommo_webhook)
    app.router.add_post("/kommo/salesbot/{hook_token}", salesbot_hook)
    app.router.add_post("/kommo/chats/{scope_id}", chats_hook)
    app.router.add_get("/oauth/kommo/callback", oauth_callback)
