"""Standard Kommo webhooks: a form body -> the account it names and typed events.

One body may carry several entities and actions (`leads[status][0]`, `leads[status][1]`,
`message[add][0]` ...); each item becomes one `KommoEvent` with a natural dedupe key, so a
webhook Kommo re-sends (it retries after failures) is recognised and dropped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from core.kommo.errors import InvalidWebhook
from core.kommo.intake.bounds import MAX_ID, bounded_id, check_form_tree
from core.kommo.intake.form import encode_form, parse_form
from core.models.events import WebhookEvent

# entity key in the body -> our entity name (companies arrive under `contacts` with type=company)
_ENTITIES = {
    "leads": "lead", "contacts": "contact", "companies": "company", "customers": "customer",
    "task": "task", "tasks": "task", "message": "message", "outgoing_message": "outgoing_message",
    "talk": "talk", "unsorted": "unsorted", "catalogs": "catalog",
}
_ACTIONS = {"add", "update", "delete", "restore", "status", "responsible", "note"}

# Kinds the conversation engine acts on: enqueued. Every other well-formed kind is stored as
# ignored (kept for audit and replay, answered 200, never enqueued).
ACTIONABLE_KINDS = frozenset({
    "message.add", "outgoing_message.add", "lead.status", "lead.delete", "talk.update", "unsorted.delete",
})

# What we subscribe an account to on connect (Kommo's event names for the kinds above).
SUBSCRIBED_EVENTS = (
    "add_message", "add_outgoing_message", "status_lead", "delete_lead", "update_talk", "delete_unsorted",
)


@dataclass
class KommoEvent:
    kind: str  # e.g. message.add, lead.status, note.add, contact.update, company.add
    entity: str
    action: str
    data: dict[str, Any]
    dedupe_key: str
    entity_id: str | None = None
    lead_id: int | None = None
    author_user_id: int | None = None  # the Kommo user whose action caused the event, if known
    source_key: str = ""  # where in the body it came from: `leads`, `status`
    source_action: str = ""

    @property
    def actionable(self) -> bool:
        return self.kind in ACTIONABLE_KINDS


@dataclass
class ParsedWebhook:
    account_subdomain: str | None
    account_id: int | None
    events: list[KommoEvent] = field(default_factory=list)
    account: dict[str, Any] = field(default_factory=dict)

    def item_body(self, index: int) -> str:
        """The body of one event alone (the account and that item): a body of many items is
        stored as one such part per event, so what is stored per request stays the size of the
        request instead of its size times its item count."""
        ev = self.events[index]
        return encode_form({"account": self.account, ev.source_key: {ev.source_action: [ev.data]}})


class TooManyItems(InvalidWebhook):
    """More items in one body than `KommoSettings.webhook_max_items` allows (answered 413)."""

    code = "webhook_too_many_items"


def _int(value: Any) -> int | None:
    """Ids were bounded when the body was checked; anything else is simply not an id."""
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if 0 < number <= MAX_ID else None


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:20]


def _kind(entity: str, action: str, item: dict[str, Any]) -> tuple[str, str]:
    if entity == "contact" and item.get("type") == "company":
        entity = "company"
    if action == "note":  # leads[note][0][note][...]: a note added to that entity
        return "note", "note.add"
    return entity, f"{entity}.{action}"


def _dedupe_key(kind: str, item: dict[str, Any]) -> tuple[str, str | None]:
    if kind in ("message.add", "outgoing_message.add") and item.get("id"):
        return f"{kind}:{item['id']}", str(item["id"])
    if kind == "note.add":
        note = item.get("note") if isinstance(item.get("note"), dict) else item
        if note.get("id"):
            return f"note.add:{note['id']}", str(note["id"])
    if kind.startswith("talk."):
        talk_id = item.get("talk_id") or item.get("id")
        stamp = item.get("updated_at") or item.get("created_at")
        if talk_id and stamp:
            return f"{kind}:{talk_id}:{stamp}:{_digest(item)[:8]}", str(talk_id)
    if kind.startswith("unsorted.") and item.get("uid"):
        return f"{kind}:{item['uid']}:{item.get('action', '')}", str(item["uid"])
    entity_id = item.get("id")
    stamp = item.get("updated_at") or item.get("last_modified")
    if kind == "lead.status" and stamp:
        # Two moves within one second share the stamp: the stage tells them apart.
        stamp = f"{stamp}:{item.get('status_id', '')}"
    if entity_id and stamp:
        return f"{kind}:{entity_id}:{stamp}", str(entity_id)
    # No natural version stamp (e.g. leads[delete]): the item content itself, which a retry repeats.
    return f"{kind}:{entity_id or '-'}:{_digest(item)}", str(entity_id) if entity_id else None


def _lead_id(entity: str, item: dict[str, Any]) -> int | None:
    if entity == "lead":
        return _int(item.get("id"))
    if entity in ("message", "outgoing_message", "talk"):
        if str(item.get("entity_type", "")) in ("lead", "leads", "2") or str(item.get("element_type")) == "2":
            return _int(item.get("entity_id") or item.get("element_id"))
    if entity == "note":
        note = item.get("note") if isinstance(item.get("note"), dict) else item
        if str(note.get("element_type")) == "2":
            return _int(note.get("element_id"))
    if entity == "task" and str(item.get("element_type")) == "2":
        return _int(item.get("element_id"))
    return None


def _author(entity: str, item: dict[str, Any]) -> int | None:
    if entity == "note":
        note = item.get("note") if isinstance(item.get("note"), dict) else item
        return _int(note.get("created_by") or note.get("modified_by"))
    if entity in ("message", "outgoing_message"):
        author = item.get("author") if isinstance(item.get("author"), dict) else {}
        return _int(author.get("id")) if author.get("type") in ("user", "bot") else None
    return _int(item.get("modified_user_id") or item.get("modified_by"))


def _items(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    if isinstance(value, dict):  # sparse indexes (`[3]` without `[0]`) stay a dict
        return [v for v in value.values() if isinstance(v, dict)]
    return []


def parse_webhook(body: bytes, content_type: str = "", *, max_items: int | None = None) -> ParsedWebhook:
    """Raise `InvalidWebhook` for anything that is not a Kommo standard webhook, holds an id
    outside int64 or an oversized value, and `TooManyItems` beyond `max_items` items."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype and ctype != "application/x-www-form-urlencoded":
        raise InvalidWebhook(f"expected form-encoded body, got {ctype[:40]}")
    tree = parse_form(body)
    if not isinstance(tree, dict):  # top-level keys 0..n-1
        raise InvalidWebhook("no account in body")
    account = tree.get("account")
    if not isinstance(account, dict) or not (account.get("subdomain") or account.get("id")):
        raise InvalidWebhook("no account in body")
    subdomain = account.get("subdomain")
    if subdomain is not None and (not isinstance(subdomain, str) or len(subdomain) > 100):
        raise InvalidWebhook("account[subdomain] is not a subdomain")
    raw_id = account.get("id")
    account_id = bounded_id(raw_id, "account[id]") if isinstance(raw_id, str) else None
    if raw_id not in (None, "") and account_id is None:
        # A non-numeric id would otherwise skip the check that the body is for this account.
        raise InvalidWebhook("account[id] is not a number")
    check_form_tree(tree)
    parsed = ParsedWebhook(account_subdomain=subdomain or None, account_id=account_id, account=account)
    for key, actions in tree.items():
        if key == "account":
            continue
        if not isinstance(actions, dict):
            raise InvalidWebhook(f"unexpected top-level field {key[:30]}")
        for action, items in actions.items():
            for item in _items(items):
                parsed.events.append(_event(key, action, item))
                if max_items is not None and len(parsed.events) > max_items:
                    raise TooManyItems(f"more than {max_items} items in one webhook "
                                       "(KOMMO_WEBHOOK_MAX_ITEMS)")
    if not parsed.events:
        raise InvalidWebhook("no events in body")
    return parsed


def _event(key: str, action: str, item: dict[str, Any]) -> KommoEvent:
    entity = _ENTITIES.get(key)
    if entity is None or action not in _ACTIONS:
        # Well-formed but unknown to us (a catalog element, a future entity): kept as unhandled.
        kind = f"other.{key[:30]}.{action[:30]}"
        return KommoEvent(kind=kind, entity=key, action=action, data=item,
                          dedupe_key=f"{kind}:{str(item.get('id', '-'))[:40]}:{_digest(item)}",
                          entity_id=str(item["id"])[:40] if item.get("id") else None,
                          source_key=key, source_action=action)
    entity, kind = _kind(entity, action, item)
    dedupe, entity_id = _dedupe_key(kind, item)
    if len(dedupe) > 300:  # ids and stamps are short in Kommo's bodies; a long one is kept bounded
        dedupe = dedupe[:200] + _digest(dedupe)
    return KommoEvent(kind=kind, entity=entity, action=action if kind != "note.add" else "add", data=item,
                      dedupe_key=dedupe, entity_id=entity_id[:80] if entity_id else None,
                      lead_id=_lead_id(entity, item), author_user_id=_author(entity, item),
                      source_key=key, source_action=action)


def event_data(event: WebhookEvent) -> dict[str, Any]:
    """The parsed item of a standard-webhook event: stored events carry its position in the body
    (`payload.item`), older ones the item itself (`payload.data`)."""
    payload = event.payload or {}
    if isinstance(payload.get("data"), dict):
        return payload["data"]
    item = payload.get("item")
    if event.source != "kommo" or not isinstance(item, int):
        return {}
    events = parse_webhook(event.raw_body.encode("ascii"), event.content_type).events
    # The body is stored as received and parses the same way again; the kind guards the index.
    if item >= len(events) or events[item].kind != event.kind:
        raise InvalidWebhook("the stored body does not hold this event")
    return events[item].data
