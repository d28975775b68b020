"""Salesbot and custom-field routes of the fake Kommo: the bots list, bot runs (v4 and v2) and
lead field creation, as strict as ../shared/kommo-api.md (sections 3.7, 3.8) lets us be.

A bot is `{"id", "name", "is_active"}`. Each account chooses the envelope its bots list comes in
(`_embedded.bots` or a top-level `bots`: public clients read both), and whether it has the v4
run endpoint at all (an account without it answers 404 there, and v2 still works).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fakes.kommo_state import ACC, next_id
from tests.fakes.kommo_wire import problem

FIELD_TYPES = {"text", "textarea", "numeric", "checkbox", "select", "multiselect", "date", "url", "radiobutton",
               "date_time", "birthday", "streetaddress", "price", "monetary"}


def _validation(path: str, detail: str) -> web.Response:
    return problem(400, "Bad Request", "Request validation failed", **{"validation-errors": [
        {"request_id": "0", "errors": [{"code": "NotSupportedChoice", "path": path, "detail": detail}]}]})


class BotRoutes:
    """GET /api/v4/bots, POST /api/v4/bots/{id}/run, POST /api/v2/salesbot/run, POST /leads/custom_fields."""

    async def list_bots(self, request: web.Request) -> web.Response:
        acc = request[ACC]
        items = list(acc.bots.values())
        if acc.bots_envelope == "_embedded":
            return self._page(request, acc, items, "bots")
        limit, page = int(request.query.get("limit", 50)), int(request.query.get("page", 1))
        if limit > 250:
            return problem(422, "Unprocessable", "Limit 250 per page")
        chunk = items[(page - 1) * limit: page * limit]
        if not chunk:
            return web.Response(status=204)
        links: dict[str, Any] = {"self": {"href": f"https://{acc.subdomain}.kommo.com/api/v4/bots?page={page}"}}
        if page * limit < len(items):
            links["next"] = {"href": f"https://{acc.subdomain}.kommo.com/api/v4/bots?page={page + 1}"}
        return web.json_response({"_page": page, "_links": links, "bots": chunk}, content_type="application/hal+json")

    def _record_run(self, acc, bot_id: int, lead_id: int, endpoint: str) -> None:
        lead = acc.leads.get(lead_id)
        acc.bot_runs.append({"bot_id": bot_id, "entity_id": lead_id, "entity_type": 2, "endpoint": endpoint,
                             "lead_fields": json.loads(json.dumps((lead or {}).get("custom_fields_values") or []))})

    def _bot_problem(self, acc, bot_id: int, *, v2: bool) -> web.Response | None:
        bot = acc.bots.get(bot_id)
        if bot is None:
            return _validation("bot_id", "Bot not found") if v2 else problem(404, "Not Found", "Bot not found")
        if not bot.get("is_active"):
            return _validation("bot_id", "Bot is disabled")
        return None

    async def run_bot_v4(self, request: web.Request) -> web.Response:
        acc = request[ACC]
        if not acc.bots_v4:
            return problem(404, "Not Found", "")
        body = await request.json()
        if not isinstance(body, list) or not body or not all(isinstance(x, dict) for x in body):
            return problem(400, "Bad Request", "an array of {entity_id, entity_type} is expected")
        bot_id = int(request.match_info["id"])
        refused = self._bot_problem(acc, bot_id, v2=False)
        if refused is not None:
            return refused
        for item in body:
            if item.get("entity_type") not in ("leads", "contacts") or not isinstance(item.get("entity_id"), int):
                return _validation("entity_type", "entity_type must be leads or contacts, entity_id a number")
            if item["entity_type"] == "leads" and item["entity_id"] not in acc.leads:
                return _validation("entity_id", "Entity not found")
        for item in body:
            self._record_run(acc, bot_id, item["entity_id"], "v4")
        return web.json_response({"success": True}, status=202)

    async def run_bot_v2(self, request: web.Request) -> web.Response:
        acc = request[ACC]
        body = await request.json()
        if not isinstance(body, list) or not body:
            return problem(400, "Bad Request", "an array of runs is expected")
        for run in body:
            if not isinstance(run, dict) or run.get("entity_type") not in (1, 2, "1", "2"):
                return _validation("entity_type", "entity_type must be 1 (contact) or 2 (lead)")
            refused = self._bot_problem(acc, int(run.get("bot_id", 0)), v2=True)
            if refused is not None:
                return refused
        for run in body:
            self._record_run(acc, int(run["bot_id"]), int(run.get("entity_id", 0)), "v2")
        return web.json_response({"success": True}, status=202)

    async def add_custom_fields(self, request: web.Request) -> web.Response:
        acc, entity = request[ACC], request.match_info["entity"]
        body = await request.json()
        if not isinstance(body, list) or not body:
            return problem(400, "Bad Request", "an array of fields is expected")
        created = []
        for item in body:
            if not isinstance(item, dict) or not str(item.get("name") or "").strip():
                return _validation("name", "This value should not be blank.")
            if item.get("type") not in FIELD_TYPES:
                return _validation("type", "The value you selected is not a valid choice.")
            field = {"id": next_id(), "name": item["name"], "type": item["type"], "code": None, "enums": None,
                     "entity_type": entity, "is_api_only": False}
            acc.custom_fields.setdefault(entity, []).append(field)
            created.append(field)
        return web.json_response({"_total_items": len(created), "_embedded": {"custom_fields": created}})
