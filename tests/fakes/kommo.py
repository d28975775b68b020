"""A fake Kommo (API v4, OAuth token endpoint, Salesbot continue, Chats API) on 127.0.0.1.

Behaves as ../shared/kommo-api.md says: rotating refresh tokens (reusing a retired one gives
401 "Token has been revoked"), access-token expiry, 7 req/s per calling IP (whatever account
the calls are for) with 429 + retry_after, 204 on empty lists, `_links.next` pagination with
absolute Kommo URLs, 403 when blocked and on admin-only calls (users, webhooks) for a token of a
non-admin user, renamed subdomains (the old host answers 401/404; the subdomain lookup names the
new whole host), the account's own timezone (`GET /api/v4/account?with=datetime_settings`), an
optional fault mode (a share of 429/5xx/timeouts), signed amojo requests. Everything it receives
is recorded for assertions. Use `async with FakeKommo() as fake:` in tests, or run it alone:
`python -m tests.fakes.kommo --port 8765` (control: GET /_fake/stats, POST /_fake/config).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import random
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.kommo_bots import BotRoutes
from tests.fakes.kommo_routes import CatalogRoutes, IntegrationRoutes, LeadRoutes, OAuthRoutes
from tests.fakes.kommo_state import ACC, USER, FakeAccount, TokenBook, next_id, seed_account
from tests.fakes.kommo_wire import CHANNEL_ID, problem


class FakeKommo(OAuthRoutes, CatalogRoutes, LeadRoutes, IntegrationRoutes, BotRoutes):
    def __init__(self, *, rate_limit: int = 7, retry_after: float = 1, access_ttl: float = 86400,
                 fault_rate: float = 0.0, fault_kinds: tuple[str, ...] = ("429", "500", "timeout"),
                 timeout_delay: float = 3.0, client_id: str = "fake-client",
                 client_secret: str = "fake-integration-secret-" + "0" * 40, seed: int = 1) -> None:
        self.rate_limit, self.retry_after = rate_limit, retry_after
        self.fault_rate, self.fault_kinds, self.timeout_delay = fault_rate, fault_kinds, timeout_delay
        self.client_id, self.client_secret = client_id, client_secret
        self.book = TokenBook(access_ttl)
        self.accounts: dict[int, FakeAccount] = {}
        self.refresh_calls = 0
        self.subdomain_lookups = 0
        self.code_calls = 0
        self.rate_limited = 0
        self.first_429_at: float | None = None  # monotonic time of the first 429 the fake answered
        self.faults = 0
        self.requests: list[tuple[int | None, str, str, float]] = []
        self.api_hosts: list[str] = []  # the account host each API call named (X-Forwarded-Host)
        self.ip_times: dict[str, list[float]] = {}  # API calls per calling IP (Kommo's limit is per IP)
        self._rng = random.Random(seed)
        self.app = web.Application(middlewares=[self._middleware])
        self._routes()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self, port: int = 0) -> str:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.base_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeKommo:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ---- seeding and inspection --------------------------------------------------------------
    def add_account(self, subdomain: str = "acme", base_domain: str = "kommo.com",
                    timezone: str = "Europe/Moscow") -> FakeAccount:
        acc = seed_account(subdomain)
        acc.base_domain, acc.timezone = base_domain, timezone
        self.accounts[acc.id] = acc
        return acc

    def scope_id(self, acc: FakeAccount) -> str:
        return f"{CHANNEL_ID}_{acc.amojo_id}"

    def open_continue(self, acc: FakeAccount, bot_id: int = 77, lead_id: int | None = None) -> str:
        """A Salesbot waiting in a widget_request step; returns its return_url (Kommo-shaped)."""
        continue_id = f"c{next_id()}"
        acc.continues[continue_id] = {"bot_id": bot_id, "lead_id": lead_id, "state": "waiting", "body": None}
        return f"https://{acc.host}/api/v4/salesbot/{bot_id}/continue/{continue_id}"

    def max_in_window(self, account_id: int | None = None, window: float = 1.0) -> int:
        """Most API calls for one account (None: from every caller together) in any `window` seconds."""
        if account_id is None:
            times = sorted(t for ts in self.ip_times.values() for t in ts)
        else:
            times = sorted(self.accounts[account_id].request_times)
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] >= window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def stats(self) -> dict[str, Any]:
        return {"refresh_calls": self.refresh_calls, "code_calls": self.code_calls,
                "rate_limited": self.rate_limited, "faults": self.faults, "requests": len(self.requests),
                "max_per_s": self.max_in_window(),
                "accounts": {a.id: {"notes": len(a.notes), "tasks": len(a.tasks), "bot_runs": len(a.bot_runs),
                                    "amojo_messages": len(a.amojo_messages),
                                    "max_per_s": self.max_in_window(a.id)} for a in self.accounts.values()}}

    # ---- plumbing ----------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        path = request.path
        if not path.startswith("/api/"):
            self.requests.append((None, request.method, path, time.monotonic()))
            return await handler(request)
        self.api_hosts.append(request.headers.get("X-Forwarded-Host", ""))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        state = self.book.check_access(token)
        if state is None:
            self.requests.append((None, request.method, path, time.monotonic()))
            return problem(401, "Unauthorized", "Invalid user name or password")
        acc = self.accounts[state.account_id]
        if acc.gone_host(request.headers.get("X-Forwarded-Host")) or acc.refuses_tokens:
            self.requests.append((None, request.method, path, time.monotonic()))
            return problem(401, "Unauthorized", "Account not found")
        now = time.monotonic()
        acc.request_times.append(now)
        self.requests.append((acc.id, request.method, path, now))
        from_ip = self.ip_times.setdefault(request.remote or "?", [])
        from_ip.append(now)
        if acc.blocked:
            return problem(403, "Forbidden", "Account is blocked")
        # Kommo counts the calling IP's requests, whichever accounts they are for.
        if len(from_ip) - bisect.bisect_right(from_ip, now - 1.0) > self.rate_limit:  # appended in order
            self.rate_limited += 1
            self.first_429_at = self.first_429_at or now
            return problem(429, "Too Many Requests", "Rate limit exceeded", retry_after=self.retry_after)
        if self.fault_rate and self._rng.random() < self.fault_rate:
            self.faults += 1
            kind = self._rng.choice(self.fault_kinds)
            if kind == "429":
                return problem(429, "Too Many Requests", "", retry_after=self.retry_after)
            if kind == "timeout":
                await asyncio.sleep(self.timeout_delay)
                return problem(504, "Gateway Timeout")
            return problem(int(kind), "Server error")
        request[ACC] = acc
        request[USER] = state.user_id or acc.current_user_id
        return await handler(request)

    def _page(self, request: web.Request, acc: FakeAccount, items: list[dict], key: str) -> web.Response:
        limit = int(request.query.get("limit", 50))
        if limit > 250:
            return problem(422, "Unprocessable", "Limit 250 per page")
        page = int(request.query.get("page", 1))
        chunk = items[(page - 1) * limit: page * limit]
        if not chunk:
            return web.Response(status=204)
        kommo = f"https://{acc.host}{request.path}"  # real links name Kommo's host

        def href(n: int) -> str:
            query = [(k, v) for k, v in request.query.items() if k not in ("page", "limit")]
            return f"{kommo}?{urlencode([*query, ('page', n), ('limit', limit)])}"
        links = {"self": {"href": href(page)}}
        if page * limit < len(items):
            links["next"] = {"href": href(page + 1)}
        return web.json_response({"_page": page, "_links": links, "_embedded": {key: chunk}},
                                 content_type="application/hal+json")

    def _routes(self) -> None:
        for method, path, handler in self.route_table():
            self.app.router.add_route(method, path, handler)

    def route_table(self) -> list[tuple[str, str, Any]]:
        """Every endpoint and its handler method; a subclass or a new mixin extends the list."""
        return [
            ("POST", "/oauth2/access_token", self.token),
            ("GET", "/oauth2/account/current/subdomain", self.current_subdomain),
            ("GET", "/api/v4/account", self.account),
            ("GET", "/api/v4/users", self.users),
            ("GET", "/api/v4/leads/pipelines", self.pipelines),
            ("GET", "/api/v4/{entity:leads|contacts}/custom_fields", self.fields),
            ("GET", "/api/v4/leads", self.list_leads),
            ("POST", "/api/v4/leads/notes", self.add_lead_notes),
            ("GET", r"/api/v4/leads/{id:\d+}", self.get_lead),
            ("PATCH", r"/api/v4/leads/{id:\d+}", self.patch_lead),
            ("POST", r"/api/v4/leads/{id:\d+}/notes", self.add_lead_notes),
            ("GET", r"/api/v4/leads/{id:\d+}/notes", self.list_lead_notes),
            ("GET", "/api/v4/contacts", self.list_contacts),
            ("GET", r"/api/v4/contacts/{id:\d+}", self.get_contact),
            ("PATCH", r"/api/v4/contacts/{id:\d+}", self.patch_contact),
            ("POST", "/api/v4/tasks", self.add_tasks),
            ("GET", "/api/v4/tasks", self.list_tasks),
            ("POST", "/api/v4/webhooks", self.webhooks),
            ("GET", "/api/v4/webhooks", self.list_webhooks),
            ("DELETE", "/api/v4/webhooks", self.delete_webhook),
            ("POST", r"/api/v4/salesbot/{bot:\d+}/continue/{cid}", self.salesbot_continue),
            ("POST", "/api/v2/salesbot/run", self.run_bot_v2),
            ("GET", "/api/v4/bots", self.list_bots),
            ("POST", r"/api/v4/bots/{id:\d+}/run", self.run_bot_v4),
            ("POST", "/api/v4/{entity:leads|contacts}/custom_fields", self.add_custom_fields),
            ("POST", "/v2/origin/custom/{scope}", self.amojo_message),
            ("GET", "/_fake/stats", self.fake_stats),
            ("POST", "/_fake/config", self.fake_config),
        ]


async def _serve(port: int, token: str, subdomain: str) -> None:
    fake = FakeKommo()
    acc = fake.add_account(subdomain)
    fake.book.issue_long_lived(acc.id, token)
    url = await fake.start(port)
    print(json.dumps({"base_url": url, "account_id": acc.id, "token": token,
                      "lead_ids": list(acc.leads), "scope_id": fake.scope_id(acc)}), flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="fake Kommo API server")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default="fake-long-lived-token")
    parser.add_argument("--subdomain", default="acme")
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.token, args.subdomain))


if __name__ == "__main__":
    main()
