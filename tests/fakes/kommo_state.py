"""State of the fake Kommo: accounts with their CRM data, issued tokens and request log.

Kept apart from the HTTP layer (`tests/fakes/kommo.py`) so tests can seed and inspect it directly.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# Lives here, not in kommo.py, so `python -m tests.fakes.kommo` and the routes share one key.
ACC = web.RequestKey("acc", object)
USER = web.RequestKey("user", object)  # the Kommo user id the request's token acts as
_ids = itertools.count(9_000_000)


def next_id() -> int:
    return next(_ids)


def default_pipelines(account_id: int) -> list[dict[str, Any]]:
    def stage(sid, name, sort, pid, type_=0):
        return {"id": sid, "name": name, "sort": sort, "is_editable": type_ == 0, "pipeline_id": pid,
                "color": "#99ccff", "type": type_, "account_id": account_id}
    return [
        {"id": 3001, "name": "Sales", "sort": 1, "is_main": True, "is_unsorted_on": True, "is_archive": False,
         "account_id": account_id, "_embedded": {"statuses": [
             stage(4001, "Incoming", 10, 3001, 1), stage(4002, "Qualified", 20, 3001),
             stage(4003, "Proposal", 30, 3001), stage(142, "Won", 10000, 3001),
             stage(143, "Lost", 11000, 3001)]}},
        {"id": 3002, "name": "Partners", "sort": 2, "is_main": False, "is_unsorted_on": False,
         "is_archive": False, "account_id": account_id, "_embedded": {"statuses": [
             stage(4101, "New", 10, 3002), stage(142, "Won", 10000, 3002), stage(143, "Lost", 11000, 3002)]}},
    ]


@dataclass
class FakeAccount:
    id: int
    subdomain: str
    amojo_id: str
    current_user_id: int  # the admin whose tokens the fake issues unless told another user
    base_domain: str = "kommo.com"  # or amocrm.ru
    timezone: str = "Europe/Moscow"  # the account's own zone (Settings -> General), never UTC by default
    users: list[dict[str, Any]] = field(default_factory=list)
    pipelines: list[dict[str, Any]] = field(default_factory=list)
    leads: dict[int, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    notes: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    webhooks_forbidden: bool = False
    bot_runs: list[dict[str, Any]] = field(default_factory=list)
    continues: dict[str, dict[str, Any]] = field(default_factory=dict)
    amojo_messages: list[dict[str, Any]] = field(default_factory=list)
    custom_fields: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    bots: dict[int, dict[str, Any]] = field(default_factory=dict)  # Salesbots: id -> {id, name, is_active}
    bots_envelope: str = "_embedded"  # or "bots": the list's key at the top level
    bots_v4: bool = True  # False: no POST /api/v4/bots/{id}/run here (v2 only)
    blocked: bool = False
    refuses_tokens: bool = False  # every API call answers 401, even with a token issued just now
    former_subdomains: set[str] = field(default_factory=set)  # renamed away: their host answers nothing
    request_times: list[float] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"{self.subdomain}.{self.base_domain}"

    def rename(self, subdomain: str) -> None:
        self.former_subdomains.add(self.subdomain)
        self.subdomain = subdomain

    def gone_host(self, host: str | None) -> bool:
        """A request addressed (X-Forwarded-Host) to another host than this account's: one it was
        renamed from, one on another domain (`acme.acme.amocrm.ru`), or one that is not its own
        at all (Kommo answers 401 there as well)."""
        return bool(host) and host.lower() != self.host.lower()

    def user(self, user_id: int | None) -> dict[str, Any] | None:
        return next((u for u in self.users if u["id"] == user_id), None)

    def is_admin(self, user_id: int | None) -> bool:
        user = self.user(user_id)
        return bool(user and (user.get("rights") or {}).get("is_admin"))

    def add_manager(self, name: str = "Manager") -> int:
        """A non-admin user of the account (tokens issued for them get 403 on admin-only calls)."""
        user_id = next_id()
        self.users.append({"id": user_id, "name": name, "email": f"{user_id}@example.com", "lang": "en",
                           "rights": {"is_admin": False, "is_active": True}, "amojo_id": str(uuid.uuid4())})
        return user_id

    def stage_ids(self, pipeline_id: int) -> set[int]:
        for p in self.pipelines:
            if p["id"] == pipeline_id:
                return {s["id"] for s in p["_embedded"]["statuses"]}
        return set()


def seed_account(subdomain: str) -> FakeAccount:
    acc_id = next_id()
    admin = next_id()
    acc = FakeAccount(id=acc_id, subdomain=subdomain, amojo_id=str(uuid.uuid4()), current_user_id=admin)
    acc.users = [
        {"id": admin, "name": "Integration Admin", "email": "admin@example.com", "lang": "en",
         "rights": {"is_admin": True, "is_active": True}, "amojo_id": str(uuid.uuid4())},
        {"id": next_id(), "name": "Мария Продажи", "email": "maria@example.com", "lang": "ru",
         "rights": {"is_admin": False, "is_active": True}, "amojo_id": str(uuid.uuid4())},
    ]
    acc.pipelines = default_pipelines(acc_id)
    acc.custom_fields = {
        "leads": [{"id": 501, "name": "AI reply", "type": "textarea", "code": None, "enums": None},
                  {"id": 502, "name": "Budget", "type": "numeric", "code": None, "enums": None},
                  {"id": 504, "name": "Delivery city", "type": "select", "code": None,
                   "enums": [{"id": 41, "value": "Kazan"}, {"id": 42, "value": "Moscow"}]}],
        "contacts": [{"id": 601, "name": "Phone", "type": "multitext", "code": "PHONE",
                      "enums": [{"id": 1, "value": "WORK"}, {"id": 2, "value": "MOB"}]},
                     {"id": 602, "name": "Email", "type": "multitext", "code": "EMAIL",
                      "enums": [{"id": 3, "value": "WORK"}]},
                     {"id": 603, "name": "City", "type": "text", "code": None, "enums": None}],
    }
    acc.bots = {77: {"id": 77, "name": "AI reply sender", "is_active": True}}
    contact_id = next_id()
    acc.contacts[contact_id] = {"id": contact_id, "name": "Иван Петров", "updated_at": int(time.time()),
                                "custom_fields_values": [
                                    {"field_id": 601, "field_code": "PHONE",
                                     "values": [{"value": "+79990000001", "enum_code": "WORK"}]}]}
    lead_id = next_id()
    acc.leads[lead_id] = {"id": lead_id, "name": "Заявка с сайта", "price": 0, "pipeline_id": 3001,
                          "status_id": 4001, "responsible_user_id": admin, "updated_at": int(time.time()),
                          "custom_fields_values": [],
                          "_embedded": {"contacts": [{"id": contact_id, "is_main": True}]}}
    return acc


API_DOMAIN = "api-c.kommo.com"  # the shared API host Kommo names in its tokens' `api_domain` claim


def jwt_like(claims: dict[str, Any]) -> str:
    """An access token shaped like Kommo's (a JWT whose payload names `api_domain`); the
    signature is random: only the fake checks tokens, by looking them up."""
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return ".".join([part({"typ": "JWT", "alg": "RS256"}), part({**claims, "jti": secrets.token_hex(12)}),
                     secrets.token_urlsafe(24)])


@dataclass
class TokenState:
    account_id: int
    kind: str  # access | refresh | long_lived
    expires_at: float | None = None
    valid: bool = True
    parent_refresh: str | None = None  # the refresh token that produced this one
    user_id: int | None = None  # whose rights the token carries; None: the account's admin


class TokenBook:
    """Kommo's rotation rule: a refresh token stays usable until its successor pair is first used;
    after that, using it again is a 401 "Token has been revoked"."""

    def __init__(self, access_ttl: float) -> None:
        self.access_ttl = access_ttl
        self.tokens: dict[str, TokenState] = {}
        self.codes: dict[str, int] = {}

    def issue_pair(self, account_id: int, parent: str | None = None,
                   access_ttl: float | None = None, user_id: int | None = None) -> tuple[str, str, int]:
        ttl = self.access_ttl if access_ttl is None else access_ttl
        if parent and parent in self.tokens:
            user_id = self.tokens[parent].user_id
        access, refresh = jwt_like({"account_id": account_id, "api_domain": API_DOMAIN}), f"rt-{secrets.token_hex(12)}"
        self.tokens[access] = TokenState(account_id, "access", time.time() + ttl, parent_refresh=parent,
                                         user_id=user_id)
        self.tokens[refresh] = TokenState(account_id, "refresh", parent_refresh=parent, user_id=user_id)
        return access, refresh, int(ttl)

    def issue_long_lived(self, account_id: int, token: str | None = None, user_id: int | None = None) -> str:
        token = token or f"ll-{secrets.token_hex(16)}"
        self.tokens[token] = TokenState(account_id, "long_lived", user_id=user_id)
        return token

    def issue_code(self, account_id: int, user_id: int | None = None) -> str:
        code = f"code-{secrets.token_hex(8)}"
        self.codes[code] = (account_id, user_id)
        return code

    def used(self, token: str) -> None:
        """First use of a pair retires the refresh token it was made from."""
        parent = self.tokens[token].parent_refresh
        if parent and parent in self.tokens:
            self.tokens[parent].valid = False

    def check_access(self, token: str) -> TokenState | None:
        state = self.tokens.get(token)
        if state is None or state.kind == "refresh" or not state.valid:
            return None
        if state.expires_at is not None and state.expires_at < time.time():
            return None
        self.used(token)
        return state

    def expire_all_access(self) -> None:
        for state in self.tokens.values():
            if state.kind == "access":
                state.expires_at = time.time() - 1
