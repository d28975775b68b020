"""Handlers of the fake Kommo, as methods of mixins that `FakeKommo` (tests/fakes/kommo.py) combines.

Each mixin owns one area of the API; `self` is the `FakeKommo`, so handlers read its accounts,
token book and settings. A later area adds a mixin and its routes, not a closure.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from tests.fakes.kommo_state import ACC, USER, next_id
from tests.fakes.kommo_wire import check_amojo_signature, problem


class OAuthRoutes:
    """OAuth: the token endpoint (codes, rotating refresh tokens) and the subdomain lookup."""

    async def token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("client_id") != self.client_id or body.get("client_secret") != self.client_secret:
            return problem(401, "Unauthorized", "Client authentication failed")
        grant = body.get("grant_type")
        if grant == "authorization_code":
            self.code_calls += 1
            issued = self.book.codes.pop(body.get("code", ""), None)
            if issued is None:
                return problem(400, "Bad Request", "Authorization code has expired", hint="Authorization code has been revoked")
            access, refresh, ttl = self.book.issue_pair(issued[0], user_id=issued[1])
        elif grant == "refresh_token":
            self.refresh_calls += 1
            if getattr(self, "refresh_delay", 0):  # a slow Kommo: the grant takes this long
                await asyncio.sleep(self.refresh_delay)
            state = self.book.tokens.get(body.get("refresh_token", ""))
            if state and self.accounts[state.account_id].gone_host(request.headers.get("X-Forwarded-Host")):
                return problem(404, "Not Found", "Account not found")  # nothing lives at a renamed host
            if state is None or state.kind != "refresh" or not state.valid:
                return problem(401, "Unauthorized", "", hint="Token has been revoked",
                               type="https://developers.amocrm.ru/v3/errors/OAuthProblemJson")
            self.book.used(body["refresh_token"])  # using a successor retires its parent
            access, refresh, ttl = self.book.issue_pair(state.account_id, parent=body["refresh_token"])
        else:
            return problem(400, "Bad Request", "unsupported grant_type")
        return web.json_response({"token_type": "Bearer", "expires_in": ttl, "access_token": access,
                                  "refresh_token": refresh, "server_time": int(time.time())})

    async def current_subdomain(self, request: web.Request) -> web.Response:
        """`GET https://{api_domain}/oauth2/account/current/subdomain` + `X-Refresh-Token`."""
        state = self.book.tokens.get(request.headers.get("X-Refresh-Token", ""))
        if state is None or state.kind != "refresh" or not state.valid:
            return problem(401, "Unauthorized", "", hint="Token has been revoked")
        acc = self.accounts[state.account_id]
        self.subdomain_lookups += 1
        # As Kommo answers (the official SDK feeds `domain` to its base-domain setter): `domain`
        # is the account's whole host, not the shared base domain.
        return web.json_response({"id": acc.id, "subdomain": acc.subdomain, "domain": acc.host,
                                  "top_level_domain": acc.base_domain.rsplit(".", 1)[-1]})


class CatalogRoutes:
    """The account and its catalog: account, users, pipelines, custom fields."""

    async def account(self, request: web.Request) -> web.Response:
        acc = request[ACC]
        body = {"id": acc.id, "name": acc.subdomain.title(), "subdomain": acc.subdomain,
                "current_user_id": request[USER], "country": "RU", "currency": "RUB"}
        extras = request.query.get("with", "").split(",")
        if "amojo_id" in extras:
            body["amojo_id"] = acc.amojo_id
        if "datetime_settings" in extras:  # the zone is only in this extra, as in Kommo's reference
            offset = datetime.now(ZoneInfo(acc.timezone)).strftime("%z")
            body["_embedded"] = {"datetime_settings": {
                "date_pattern": "d.m.Y H:i", "short_date_pattern": "d.m.Y", "short_time_pattern": "H:i",
                "date_formant": "d.m.Y", "time_format": "H:i:s", "timezone": acc.timezone,
                "timezone_offset": f"{offset[:3]}:{offset[3:]}"}}
        return web.json_response(body)

    async def users(self, request):
        if not request[ACC].is_admin(request[USER]):  # admin-only in Kommo
            return problem(403, "Forbidden", "Access denied")
        return self._page(request, request[ACC], request[ACC].users, "users")

    async def pipelines(self, request):
        acc = request[ACC]
        return web.json_response({"_total_items": len(acc.pipelines), "_embedded": {"pipelines": acc.pipelines}})

    async def fields(self, request):
        acc = request[ACC]
        return self._page(request, acc, acc.custom_fields.get(request.match_info["entity"], []), "custom_fields")


class LeadRoutes:
    """Leads, contacts, notes and tasks, with Kommo's filters and validation."""

    def _lead(self, request) -> dict[str, Any]:
        lead = request[ACC].leads.get(int(request.match_info["id"]))
        if lead is None:
            raise web.HTTPNotFound()
        return lead

    async def get_lead(self, request):
        return web.json_response(self._lead(request))

    async def list_leads(self, request):
        acc, q = request[ACC], request.query
        items = list(acc.leads.values())
        if "filter[pipeline_id]" in q:
            items = [x for x in items if x["pipeline_id"] == int(q["filter[pipeline_id]"])]
        ids = self._ids_filter(q)
        if ids:
            items = [x for x in items if str(x["id"]) in ids]
        stages = self._statuses_filter(q)
        if stages:
            items = [x for x in items if (x["pipeline_id"], x["status_id"]) in stages]
        return self._page(request, acc, items, "leads")

    @staticmethod
    def _ids_filter(q) -> list[str]:
        # filter[id][]=1, filter[id]=1 or PHP-indexed filter[id][0]=1
        indexed = [v for k, v in q.items() if k.startswith("filter[id][") and k != "filter[id][]"]
        return q.getall("filter[id][]", []) + q.getall("filter[id]", []) + indexed

    @staticmethod
    def _statuses_filter(q) -> set[tuple[int, int]]:
        # filter[statuses][0][pipeline_id]=P&filter[statuses][0][status_id]=S (one stage per pipeline)
        found: dict[str, dict[str, int]] = {}
        for key, value in q.items():
            if key.startswith("filter[statuses]["):
                index, field = key[len("filter[statuses]["):].rstrip("]").split("][")
                found.setdefault(index, {})[field] = int(value)
        return {(f["pipeline_id"], f["status_id"]) for f in found.values() if len(f) == 2}

    async def list_contacts(self, request):
        acc = request[ACC]
        items = list(acc.contacts.values())
        ids = self._ids_filter(request.query)
        if ids:
            items = [x for x in items if str(x["id"]) in ids]
        return self._page(request, acc, items, "contacts")

    @staticmethod
    def _merge_fields(entity: dict, values: list[dict]) -> None:
        # Kommo replaces a field's values as a whole: whatever is sent is the new full list.
        current = {f.get("field_id") or f.get("field_code"): f for f in entity.get("custom_fields_values") or []}
        for f in values:
            current[f.get("field_id") or f.get("field_code")] = f
        entity["custom_fields_values"] = list(current.values())

    @staticmethod
    def _bad_choice(acc, entity: str, values: list[dict]) -> web.Response | None:
        """Kommo refuses an option a select-like field does not have (by enum_id, or by its text)."""
        fields = {f["id"]: f for f in acc.custom_fields.get(entity, [])}
        for f in values:
            spec = fields.get(f.get("field_id"))
            if not spec or spec["type"] not in ("select", "multiselect", "radiobutton"):
                continue
            options = {e["id"]: e["value"] for e in spec["enums"] or []}
            for v in f.get("values") or []:
                known = options.get(v["enum_id"]) if "enum_id" in v else (
                    v.get("value") if v.get("value") in options.values() else None)
                if known is None or ("value" in v and "enum_id" in v and v["value"] != known):
                    return problem(400, "Bad Request", "Request validation failed", **{"validation-errors": [
                        {"request_id": "0", "errors": [{"code": "NotSupportedChoice", "path": "custom_fields_values",
                                                        "detail": "The value you selected is not a valid choice."}]}]})
        return None

    @staticmethod
    def _unknown_field(acc, entity: str, values: list[dict]) -> web.Response | None:
        """Kommo refuses a value for a field id the account does not have (e.g. one deleted)."""
        known = {f["id"] for f in acc.custom_fields.get(entity, [])}
        for f in values:
            if "field_id" in f and f["field_id"] not in known:
                return problem(400, "Bad Request", "Request validation failed", **{"validation-errors": [
                    {"request_id": "0", "errors": [{"code": "FieldNotFound", "path": "custom_fields_values.field_id",
                                                    "detail": "Field not found"}]}]})
        return None

    async def patch_lead(self, request):
        acc, lead, body = request[ACC], self._lead(request), await request.json()
        if not isinstance(body, dict):
            return problem(405, "Method Not Allowed", "single-entity PATCH expects an object")
        refused = self._bad_choice(acc, "leads", body.get("custom_fields_values") or []) or \
            self._unknown_field(acc, "leads", body.get("custom_fields_values") or [])
        if refused is not None:
            return refused
        pipeline_id = body.get("pipeline_id", lead["pipeline_id"])
        if "status_id" in body and body["status_id"] not in acc.stage_ids(pipeline_id):
            return problem(400, "Bad Request", "Request validation failed", **{"validation-errors": [
                {"request_id": "0", "errors": [{"code": "NotSupportedChoice", "path": "status_id",
                                                "detail": "The value you selected is not a valid choice."}]}]})
        for key in ("name", "price", "status_id", "pipeline_id", "responsible_user_id"):
            if key in body:
                lead[key] = body[key]
        self._merge_fields(lead, body.get("custom_fields_values") or [])
        lead["updated_at"], lead["updated_by"] = int(time.time()), request[USER]
        return web.json_response({"id": lead["id"], "updated_at": lead["updated_at"]})

    async def get_contact(self, request):
        contact = request[ACC].contacts.get(int(request.match_info["id"]))
        return web.json_response(contact) if contact else problem(404, "Not Found")

    async def patch_contact(self, request):
        contact = request[ACC].contacts.get(int(request.match_info["id"]))
        if contact is None:
            return problem(404, "Not Found")
        body = await request.json()
        self._merge_fields(contact, body.get("custom_fields_values") or [])
        contact["updated_at"] = int(time.time())
        return web.json_response({"id": contact["id"], "updated_at": contact["updated_at"]})

    @staticmethod
    def _add_notes(acc, items: list[dict], lead_id: int | None, user_id: int) -> list[dict]:
        out = []
        for n in items:
            entity_id = lead_id or n.get("entity_id")
            if entity_id not in acc.leads:
                raise web.HTTPBadRequest(text="entity not found")
            note = {"id": next_id(), "entity_id": entity_id, "note_type": n.get("note_type"),
                    "params": n.get("params", {}), "created_by": user_id,
                    "created_at": int(time.time())}
            acc.notes.append(note)
            out.append({"id": note["id"], "entity_id": entity_id, "request_id": n.get("request_id", "0")})
        return out

    async def add_lead_notes(self, request):
        lead_id = int(request.match_info["id"]) if "id" in request.match_info else None
        created = self._add_notes(request[ACC], await request.json(), lead_id, request[USER])
        return web.json_response({"_embedded": {"notes": created}})

    async def list_lead_notes(self, request):
        acc = request[ACC]
        lead_id = int(request.match_info["id"])
        return self._page(request, acc, [n for n in acc.notes if n["entity_id"] == lead_id], "notes")

    async def add_tasks(self, request):
        acc, created = request[ACC], []
        for t in await request.json():
            if not t.get("text") or not t.get("complete_till"):
                return problem(400, "Bad Request", "text and complete_till are required")
            task = {"id": next_id(), "is_completed": False, "created_by": request[USER],
                    "responsible_user_id": t.get("responsible_user_id", request[USER]), **t}
            acc.tasks.append(task)
            created.append({"id": task["id"], "request_id": t.get("request_id", "0")})
        return web.json_response({"_embedded": {"tasks": created}})

    async def list_tasks(self, request):
        acc, q = request[ACC], request.query
        items = acc.tasks
        if "filter[entity_id]" in q or "filter[entity_id][]" in q:
            wanted = {int(x) for x in q.getall("filter[entity_id]", []) + q.getall("filter[entity_id][]", [])}
            items = [t for t in items if t.get("entity_id") in wanted]
        return self._page(request, acc, items, "tasks")


class IntegrationRoutes:
    """What integrations call: webhooks, Salesbot continue and run, the Chats API, and the fake's own control."""

    async def webhooks(self, request):
        acc, body = request[ACC], await request.json()
        if acc.webhooks_forbidden or not acc.is_admin(request[USER]):  # a non-admin, or a plan without API webhooks
            return problem(403, "Forbidden", "Access denied")
        acc.webhooks = [w for w in acc.webhooks if w["destination"] != body.get("destination")]
        hook = {"id": next_id(), "destination": body.get("destination"), "settings": body.get("settings", []),
                "sort": body.get("sort", 10), "disabled": False, "created_at": int(time.time())}
        acc.webhooks.append(hook)
        return web.json_response(hook, status=201)

    async def delete_webhook(self, request):
        acc, body = request[ACC], await request.json()
        if acc.webhooks_forbidden:
            return problem(403, "Forbidden", "Access denied")
        if not body.get("destination"):
            return problem(400, "Bad Request", "Request validation failed")
        acc.webhooks = [w for w in acc.webhooks if w["destination"] != body["destination"]]
        return web.Response(status=204)

    async def list_webhooks(self, request):
        acc = request[ACC]
        if acc.webhooks_forbidden or not acc.is_admin(request[USER]):
            return problem(403, "Forbidden", "Access denied")
        wanted = request.query.get("filter[destination]")
        hooks = [w for w in acc.webhooks if wanted is None or w["destination"] == wanted]
        if not hooks:
            return web.Response(status=204)
        return web.json_response({"_total_items": len(hooks), "_embedded": {"webhooks": hooks}})

    async def salesbot_continue(self, request):
        acc = request[ACC]
        cont = acc.continues.get(request.match_info["cid"])
        if cont is None or cont["bot_id"] != int(request.match_info["bot"]):
            return problem(404, "Not Found", "continue_id not found")
        if cont["state"] != "waiting":
            return problem(400, "Bad Request", "bot is not waiting")
        cont.update(state="continued", body=await request.json())
        return web.Response(status=202)

    async def amojo_message(self, request):
        body = await request.read()
        error = check_amojo_signature(request, body)
        if error:
            return web.json_response({"status": 403, "error_code": "ORIGIN_INVALID_SIGNATURE",
                                      "error_type": "ORIGIN_INVALID_SIGNATURE", "error_description": error},
                                     status=403)
        scope = request.match_info["scope"]
        acc = next((a for a in self.accounts.values() if self.scope_id(a) == scope), None)
        if acc is None:
            return web.json_response({"error_code": "ORIGIN_NOT_REGISTERED"}, status=404)
        data = json.loads(body)
        acc.amojo_messages.append(data)
        payload = data.get("payload", {})
        return web.json_response({"new_message": {"conversation_id": payload.get("conversation_id"),
                                                  "msgid": str(uuid.uuid4()), "ref_id": payload.get("msgid")}})

    async def fake_stats(self, _):
        return web.json_response(self.stats())

    async def fake_config(self, request):
        body = await request.json()
        for key in ("fault_rate", "rate_limit", "retry_after", "timeout_delay"):
            if key in body:
                setattr(self, key, body[key])
        return web.json_response({"ok": True})

