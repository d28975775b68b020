"""Webhook intake: the core service behind the Kommo, Salesbot and Chats API hook routes.

Resolve the account by the path token (hash lookup + constant-time compare), parse, turn every
item into a `WebhookEvent` (status RECEIVED, or IGNORED for kinds the engine does not act on), store them through the
group committer (duplicates by dedupe key are acknowledged, not enqueued), and return counts.
No Kommo or LLM calls happen here.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import structlog

from core.clock import utcnow
from core.config import KommoSettings
from core.ids import new_id
from core.kommo.errors import InvalidWebhook, UnknownHook
from core.kommo.intake.bounds import bounded_id, check_json_tree
from core.kommo.intake.form import parse_form
from core.kommo.intake.group_commit import GroupCommitter
from core.kommo.intake.limits import IntakeLimits, WebhookRateLimited
from core.kommo.intake.parser import KommoEvent, ParsedWebhook, parse_webhook
from core.kommo.intake.signatures import verify_chats_signature, verify_salesbot_token
from core.models.events import EventStatus, WebhookEvent
from core.models.kommo import KommoAccount
from core.models.stored import iso
from core.security.keyring import Keyring
from core.storage.repositories.events import WebhookRejectionRepository
from core.storage.repositories.kommo_accounts import KommoAccountRepository, hook_token_hash

log = structlog.get_logger("kommo.intake")
MAX_KNOWN_TOKENS = 10_000

CHATS_MESSAGE_KINDS = {"chats.message"}


class IntakeEvent(WebhookEvent):
    """A standard-webhook `WebhookEvent` as intake builds it: constructed without validation and
    stored without the parsed item.

    Intake fills plain, already valid values (str, int, enum, a datetime), so `model_construct`
    and a hand-written `to_mongo` in the codec's stored form give the same document as
    validation plus `Document.to_mongo` (a test compares them) at a fraction of the cost. The
    parsed item itself is not stored: it is `raw_body` parsed again, and the worker does that
    (`webhook_parser.event_data`), because storing it doubled what nx-27017 writes per event.
    """

    @classmethod
    def build(cls, **fields: Any) -> IntakeEvent:
        now = utcnow()
        return cls.model_construct(created_at=now, received_at=now, attempts=0, **fields)

    def to_mongo(self) -> dict[str, Any]:
        at = iso(self.created_at)
        return {"_id": self.id, "created_at": at, "org_id": self.org_id, "source": self.source, "kind": self.kind,
                "dedupe_key": self.dedupe_key, "raw_body": self.raw_body, "content_type": self.content_type,
                "payload": self.payload, "status": self.status, "error": self.error,
                "received_at": iso(self.received_at) if self.received_at is not self.created_at else at,
                "attempts": self.attempts, "claimed_at": None}


@dataclass
class IntakeResult:
    org_id: str
    accepted: int = 0  # new and enqueued
    duplicates: int = 0
    unhandled: int = 0
    ignored: int = 0
    event_ids: list[str] = field(default_factory=list)


class WebhookIntake:
    def __init__(self, *, settings: KommoSettings, accounts: KommoAccountRepository, keyring: Keyring,
                 committer: GroupCommitter, rejections: WebhookRejectionRepository | None = None,
                 limits: IntakeLimits | None = None, cache_ttl_s: float = 10.0) -> None:
        self.settings = settings
        self.accounts = accounts
        self.keyring = keyring
        self.committer = committer
        self.rejections = rejections
        self.limits = limits or IntakeLimits(events_per_minute=settings.webhook_events_per_minute,
                                             unknown_tokens_per_minute=settings.webhook_unknown_tokens_per_minute)
        self.cache_ttl_s = cache_ttl_s
        self._cache: dict[str, tuple[float, KommoAccount, str]] = {}
        # Digests that named an account once: their lookups are never refused by the unknown-token
        # limit, so a guesser behind the same proxy as Kommo cannot lock the real hooks out.
        self._known: set[str] = set()

    async def resolve(self, hook_token: str, client: str = "") -> KommoAccount:
        """Unknown or mismatching tokens raise `UnknownHook` (the route answers 404); a client
        that keeps trying unknown tokens is refused with `WebhookRateLimited` before any lookup."""
        if not hook_token or len(hook_token) > 128:
            self._miss(client)
            raise UnknownHook("unknown webhook token")
        digest = hook_token_hash(hook_token)
        hit = self._cache.get(digest)
        if hit is None or hit[0] < time.monotonic():
            if digest not in self._known:
                self.limits.unknown_tokens.check(client, "unknown webhook tokens from this client")
            account = await self.accounts.by_hook_token_hash(digest)
            if account is None or "hook_token" not in account.secrets:
                self._miss(client)
                raise UnknownHook("unknown webhook token")
            plain = self.keyring.decrypt(account.org_id, "hook_token", account.secrets["hook_token"])
            hit = (time.monotonic() + self.cache_ttl_s, account, plain)
            self._cache[digest] = hit
            if len(self._known) < MAX_KNOWN_TOKENS:
                self._known.add(digest)
        _, account, plain = hit
        if not secrets.compare_digest(plain.encode(), hook_token.encode()):
            self._miss(client)
            raise UnknownHook("unknown webhook token")
        return account

    def _miss(self, client: str) -> None:
        try:
            self.limits.unknown_tokens.take(client, 1, "unknown webhook tokens from this client")
        except WebhookRateLimited:
            pass  # this one is answered 404 already; the next is refused before its lookup

    async def kommo_webhook(self, hook_token: str, body: bytes, content_type: str, client: str = "") -> IntakeResult:
        account = await self.resolve(hook_token, client)
        self.limits.events.check(account.org_id, "webhook events for this account")
        try:
            parsed = parse_webhook(body, content_type, max_items=self.settings.webhook_max_items)
            if parsed.account_id and account.account_id and parsed.account_id != account.account_id:
                raise InvalidWebhook("webhook is for another Kommo account")
            if (account.account_id is None and parsed.account_subdomain
                    and parsed.account_subdomain.lower() != account.subdomain.lower()):
                raise InvalidWebhook("webhook is for another Kommo account")
        except InvalidWebhook as exc:
            await self._rejected(account, "kommo", exc, body, content_type)
            raise
        self.limits.events.take(account.org_id, len(parsed.events), "webhook events for this account")
        docs = [self._doc(account, parsed, i, body, content_type) for i in range(len(parsed.events))]
        return await self._store(account, docs, body, content_type)

    async def _rejected(self, account: KommoAccount, source: str, exc: InvalidWebhook, body: bytes,
                        content_type: str) -> None:
        """Count the bad request against its account and keep it, with the reason, for the operators."""
        if isinstance(exc, WebhookRateLimited):
            return
        try:
            self.limits.events.take(account.org_id, 1, "webhook events for this account")
        except WebhookRateLimited:
            return  # a flood of bad bodies is refused, not recorded one by one
        log.warning("webhook rejected", org_id=account.org_id, source=source, reason=exc.reason)
        if self.rejections is None:
            return
        try:
            await self.rejections.record(account.org_id, source=source, reason=exc.reason, body=body,
                                         content_type=content_type)
        except Exception as err:  # noqa: BLE001 - the answer (4xx with the reason) matters more
            log.warning("recording a rejected webhook failed", org_id=account.org_id, error=str(err)[:200])

    def _doc(self, account: KommoAccount, parsed: ParsedWebhook, index: int, body: bytes,
             ctype: str) -> IntakeEvent:
        ev: KommoEvent = parsed.events[index]
        acc_id, subdomain = parsed.account_id, parsed.account_subdomain
        if len(parsed.events) == 1:
            raw, item = body.decode("ascii"), 0  # the usual case: stored as received
        else:
            raw, item = parsed.item_body(index), 0  # each event keeps only its own part
        # Whether an event echoes one of our own writes is the worker's call (the action journal);
        # here only the kinds the engine does not act on are set aside: stored, counted, ignored.
        status = EventStatus.RECEIVED if ev.actionable and not _talk_in_work(ev) else EventStatus.IGNORED
        payload = {"entity": ev.entity, "action": ev.action, "entity_id": ev.entity_id, "lead_id": ev.lead_id,
                   "author_user_id": ev.author_user_id, "account_id": acc_id, "item": item,
                   "subdomain": subdomain}
        return IntakeEvent.build(id=new_id("evt"), org_id=account.org_id, source="kommo", kind=ev.kind,
                                 dedupe_key=ev.dedupe_key, raw_body=raw, content_type=ctype, payload=payload,
                                 status=status,
                                 error=f"not acted on: {ev.kind}" if status == EventStatus.IGNORED else None)

    def widget_secret(self, account: KommoAccount) -> str | None:
        """The JWT of a widget_request is signed by the integration that owns the widget: the
        one this connection set up (`kommo delivery --widget-secret-file`), else ours."""
        if "widget_secret" in account.secrets:
            return self.keyring.decrypt(account.org_id, "widget_secret", account.secrets["widget_secret"])
        return self.settings.client_secret.get_secret_value() if self.settings.client_secret else None

    async def salesbot(self, hook_token: str, body: bytes, content_type: str, client: str = "") -> IntakeResult:
        account = await self.resolve(hook_token, client)
        self.limits.events.check(account.org_id, "webhook events for this account")
        try:
            doc = self._salesbot_doc(account, body, content_type)
        except InvalidWebhook as exc:
            await self._rejected(account, "salesbot", exc, body, content_type)
            raise
        self.limits.events.take(account.org_id, 1, "webhook events for this account")
        return await self._store(account, [doc], body, content_type)

    def _salesbot_doc(self, account: KommoAccount, body: bytes, content_type: str) -> WebhookEvent:
        secret = self.widget_secret(account)
        if secret is None:
            raise InvalidWebhook("salesbot hooks are not configured (no widget integration secret)")
        data = _json_or_form(body, content_type)
        claims = verify_salesbot_token(data.get("token"), secret)
        claimed_account = bounded_id(claims.get("account_id"), "token account_id")
        if claimed_account and account.account_id and claimed_account != account.account_id:
            raise InvalidWebhook("salesbot token is for another Kommo account")
        return_url = str(data.get("return_url") or "")
        path = urlsplit(return_url).path
        if "/salesbot/" not in path or "/continue/" not in path or len(return_url) > 500:
            raise InvalidWebhook("missing or malformed return_url")
        host = urlsplit(return_url).hostname
        if host and host.lower() != account.host.lower():
            # Our account token is sent to the return_url: only ever to the account's own host.
            raise InvalidWebhook("return_url is not on the account's host")
        fields = data.get("data") if isinstance(data.get("data"), dict) else {}
        lead_id = claims.get("entity_id") if str(claims.get("entity_type", "2")) == "2" else None
        # `lead: null` or no lead at all (a bot on a contact or a customer) is refused here, never
        # keyed as `lead:None` (which merged unrelated customers); ids beyond int64 are refused too.
        lead_id = bounded_id(lead_id, "token entity_id") or bounded_id(fields.get("lead_id"), "data[lead_id]")
        if lead_id is None:
            raise InvalidWebhook("widget_request names no lead (the agent answers leads only)")
        return WebhookEvent(_id=new_id("evt"), org_id=account.org_id, source="salesbot",
                           kind="salesbot.widget_request", dedupe_key=f"salesbot:{path.rsplit('/', 1)[-1]}",
                           raw_body=body.decode("utf-8", errors="replace"), content_type=content_type,
                           payload={"data": fields, "return_url": return_url, "lead_id": lead_id,
                                    "bot_claims": {k: _claim(claims.get(k)) for k in ("account_id", "entity_id",
                                                                                      "entity_type", "bot_type")}})

    async def chats(self, scope_id: str, body: bytes, signature: str | None, client: str = "") -> IntakeResult:
        secret = self.settings.chats_channel_secret
        if secret is None:
            raise UnknownHook("chats channel is not configured")
        verify_chats_signature(body, signature, secret.get_secret_value())  # before anything else
        account = await self.accounts.by_chats_scope_id(scope_id[:200])
        if account is None:
            raise UnknownHook("unknown chats scope")
        self.limits.events.check(account.org_id, "webhook events for this account")
        try:
            data = _json(body, "chats hook body")
        except InvalidWebhook as exc:
            await self._rejected(account, "chats", exc, body, "application/json")
            raise
        self.limits.events.take(account.org_id, 1, "webhook events for this account")
        kind, msg_id = _chats_kind(data)
        status = EventStatus.RECEIVED if kind in CHATS_MESSAGE_KINDS else EventStatus.UNHANDLED
        dedupe = f"{kind}:{msg_id}" if msg_id else f"{kind}:{hashlib.sha256(body).hexdigest()[:24]}"
        doc = WebhookEvent(_id=new_id("evt"), org_id=account.org_id, source="chats", kind=kind, dedupe_key=dedupe,
                           raw_body=body.decode("utf-8", errors="replace"), content_type="application/json",
                           payload=data, status=status)
        return await self._store(account, [doc], body, "application/json")

    async def _store(self, account: KommoAccount, docs: list[WebhookEvent], body: bytes,
                     content_type: str) -> IntakeResult:
        try:
            fresh = await self.committer.submit(docs)
        except InvalidWebhook as exc:  # this request's documents alone could not be stored
            await self._rejected(account, docs[0].source if docs else "kommo", exc, body, content_type)
            raise
        result = IntakeResult(org_id=account.org_id)
        for doc, is_new in zip(docs, fresh, strict=True):
            if not is_new:
                result.duplicates += 1
                continue
            result.event_ids.append(doc.id)
            if doc.status in (EventStatus.RECEIVED, EventStatus.QUEUED):
                result.accepted += 1
            elif doc.status == EventStatus.IGNORED:
                result.ignored += 1
            else:
                result.unhandled += 1
        return result


def _talk_in_work(ev: KommoEvent) -> bool:
    """Kommo sends `update_talk` for every read mark and reassignment too; only a closed talk
    (`is_in_work` off) is acted on, so the rest is not worth a task."""
    return ev.kind == "talk.update" and str(ev.data.get("is_in_work", "1")).strip().lower() not in ("0", "false", "")


def _claim(value: Any) -> Any:
    """A JWT claim as stored: plain scalars only, bounded (the token is signed, but a claim
    BSON cannot hold must not fail the write)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else str(value)
    return str(value)[:100]


def _json(body: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidWebhook(f"{what} is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidWebhook(f"{what} is not an object")
    check_json_tree(data)
    return data


def _json_or_form(body: bytes, content_type: str) -> dict[str, Any]:
    # Kommo documents JSON, but a practitioner saw widget_request arrive form-encoded: accept both.
    if "json" in content_type or body.lstrip()[:1] == b"{":
        return _json(body, "body")
    data = parse_form(body)
    if not isinstance(data, dict):
        raise InvalidWebhook("body is not an object")
    check_json_tree(data)
    return data


def _chats_kind(data: dict[str, Any]) -> tuple[str, str | None]:
    message = data.get("message")
    if isinstance(message, dict):
        inner = message.get("message") if isinstance(message.get("message"), dict) else {}
        return "chats.message", inner.get("id")
    action = data.get("action")
    if isinstance(action, dict) and action:
        return f"chats.{next(iter(action))[:30]}", None  # typing, reaction: not acted on
    if "conversation_id" in data and "text" in data:
        return "chats.message_v1", None  # deprecated v1 hook shape: stored, not acted on
    return "chats.other", None
