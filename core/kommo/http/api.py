"""Typed-ish wrappers over the API v4 endpoints the agent uses (one method per endpoint)."""

from __future__ import annotations

from typing import Any

from core.kommo.errors import KommoNotFound
from core.kommo.http.client import KommoClient
from core.models.kommo import KommoAccount


class KommoApi:
    def __init__(self, client: KommoClient) -> None:
        self.client = client

    # account and catalog ------------------------------------------------------------------------
    async def account(self, acc: KommoAccount) -> dict[str, Any]:
        """The account, with its chat id and its date/time settings (`_embedded.datetime_settings`
        holds the account's timezone)."""
        return await self.client.request(acc, "GET", "/api/v4/account",
                                         params={"with": "amojo_id,datetime_settings"}) or {}

    async def users(self, acc: KommoAccount) -> list[dict[str, Any]]:
        """Admin-only in Kommo: a non-admin token gets `KommoForbidden`, never a blocked account."""
        return await self.client.get_all(acc, "/api/v4/users", "users", {"with": "amojo_id"}, forbidden_ok=True)

    async def pipelines(self, acc: KommoAccount) -> list[dict[str, Any]]:
        body = await self.client.request(acc, "GET", "/api/v4/leads/pipelines")
        return (body or {}).get("_embedded", {}).get("pipelines", [])

    async def custom_fields(self, acc: KommoAccount, entity: str) -> list[dict[str, Any]]:
        return await self.client.get_all(acc, f"/api/v4/{entity}/custom_fields", "custom_fields")

    # leads ----------------------------------------------------------------------------------------
    async def lead(self, acc: KommoAccount, lead_id: int, with_: str = "contacts") -> dict[str, Any]:
        return await self.client.request(acc, "GET", f"/api/v4/leads/{int(lead_id)}", params={"with": with_})

    async def leads(self, acc: KommoAccount, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        params = {f"filter[{k}]": v for k, v in (filters or {}).items()}
        return await self.client.get_all(acc, "/api/v4/leads", "leads", params)

    async def leads_in_stage(self, acc: KommoAccount, pipeline_id: int, status_id: int) -> list[dict[str, Any]]:
        """Every lead in one stage, with its contact links (tags come in `_embedded.tags`).
        Kommo's `filter[statuses]` takes one stage per pipeline per call."""
        params = {"filter[statuses][0][pipeline_id]": int(pipeline_id),
                  "filter[statuses][0][status_id]": int(status_id), "with": "contacts"}
        return await self.client.get_all(acc, "/api/v4/leads", "leads", params)

    async def update_lead(self, acc: KommoAccount, lead_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        return await self.client.request(acc, "PATCH", f"/api/v4/leads/{int(lead_id)}", json_body=changes) or {}

    # contacts ---------------------------------------------------------------------------------------
    async def contact(self, acc: KommoAccount, contact_id: int) -> dict[str, Any]:
        return await self.client.request(acc, "GET", f"/api/v4/contacts/{int(contact_id)}")

    async def contacts_by_ids(self, acc: KommoAccount, contact_ids: list[int]) -> list[dict[str, Any]]:
        """Contacts by id, up to 250 per call (PHP-style indexed `filter[id][n]`)."""
        found: list[dict[str, Any]] = []
        ids = sorted({int(i) for i in contact_ids})
        for start in range(0, len(ids), 250):
            params = {f"filter[id][{n}]": cid for n, cid in enumerate(ids[start:start + 250])}
            found.extend(await self.client.get_all(acc, "/api/v4/contacts", "contacts", params))
        return found

    async def update_contact(self, acc: KommoAccount, contact_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        return await self.client.request(acc, "PATCH", f"/api/v4/contacts/{int(contact_id)}",
                                         json_body=changes) or {}

    # notes and tasks ------------------------------------------------------------------------------
    async def add_lead_note(self, acc: KommoAccount, lead_id: int, text: str,
                            note_type: str = "common") -> dict[str, Any]:
        params = {"text": text} if note_type == "common" else {"text": text, "service": "AI agent"}
        body = await self.client.request(acc, "POST", f"/api/v4/leads/{int(lead_id)}/notes",
                                         json_body=[{"note_type": note_type, "params": params}])
        return ((body or {}).get("_embedded", {}).get("notes") or [{}])[0]

    async def lead_notes(self, acc: KommoAccount, lead_id: int) -> list[dict[str, Any]]:
        return await self.client.get_all(acc, f"/api/v4/leads/{int(lead_id)}/notes", "notes")

    async def create_task(self, acc: KommoAccount, task: dict[str, Any]) -> dict[str, Any]:
        body = await self.client.request(acc, "POST", "/api/v4/tasks", json_body=[task])
        return ((body or {}).get("_embedded", {}).get("tasks") or [{}])[0]

    async def lead_tasks(self, acc: KommoAccount, lead_id: int) -> list[dict[str, Any]]:
        return await self.client.get_all(acc, "/api/v4/tasks", "tasks",
                                         {"filter[entity_type]": "leads", "filter[entity_id]": int(lead_id)})

    # webhooks and salesbot ------------------------------------------------------------------------
    async def register_webhook(self, acc: KommoAccount, destination: str, events: list[str]) -> dict[str, Any]:
        # Re-posting a destination replaces its event list (and re-enables a disabled hook).
        # 403 here means "not an admin / not on a plan with API webhooks", not a blocked account.
        return await self.client.request(acc, "POST", "/api/v4/webhooks", idempotent=True, forbidden_ok=True,
                                         json_body={"destination": destination, "settings": events, "sort": 10}) or {}

    async def unregister_webhook(self, acc: KommoAccount, destination: str) -> None:
        """Kommo deletes a webhook by its URL (admin-only, like registering)."""
        await self.client.request(acc, "DELETE", "/api/v4/webhooks", idempotent=True, forbidden_ok=True,
                                  json_body={"destination": destination})

    async def webhooks(self, acc: KommoAccount, destination: str | None = None) -> list[dict[str, Any]]:
        """The account's webhooks (admin-only: 403 is KommoForbidden, not a blocked account)."""
        params = {"filter[destination]": destination} if destination else None
        body = await self.client.request(acc, "GET", "/api/v4/webhooks", params=params, forbidden_ok=True)
        return (body or {}).get("_embedded", {}).get("webhooks", [])

    async def salesbot_continue(self, acc: KommoAccount, path: str, body: dict[str, Any]) -> Any:
        return await self.client.request(acc, "POST", path, json_body=body)

    async def salesbot_run(self, acc: KommoAccount, bot_id: int, lead_id: int) -> str:
        """Run a prepared bot on a lead: the current endpoint, or v2 on accounts without it.
        Returns the endpoint that took it. A 404 from v4 is ambiguous (no such endpoint, or no
        such bot), so v2 decides; its refusal is the answer."""
        try:
            await self.client.request(acc, "POST", f"/api/v4/bots/{int(bot_id)}/run",
                                      json_body=[{"entity_id": int(lead_id), "entity_type": "leads"}])
            return "v4"
        except KommoNotFound:
            pass
        await self.client.request(acc, "POST", "/api/v2/salesbot/run",
                                  json_body=[{"bot_id": int(bot_id), "entity_id": int(lead_id), "entity_type": 2}])
        return "v2"

    async def bots(self, acc: KommoAccount, max_pages: int = 40) -> list[dict[str, Any]]:
        """The account's Salesbots, every page. Public clients see the list both as `bots` and
        as `_embedded.bots`; either is read."""
        items: list[dict[str, Any]] = []
        for page in range(1, max_pages + 1):
            body = await self.client.request(acc, "GET", "/api/v4/bots", params={"page": page, "limit": 250})
            if not isinstance(body, dict):
                break  # 204: no (more) bots
            chunk = body.get("bots")
            if not isinstance(chunk, list):
                chunk = (body.get("_embedded") or {}).get("bots")
            chunk = [b for b in chunk or [] if isinstance(b, dict)]
            items.extend(chunk)
            if not chunk or not (body.get("_links") or {}).get("next"):
                break
        return items

    async def create_lead_field(self, acc: KommoAccount, name: str, field_type: str = "textarea") -> dict[str, Any]:
        body = await self.client.request(acc, "POST", "/api/v4/leads/custom_fields",
                                         json_body=[{"name": name, "type": field_type}])
        return ((body or {}).get("_embedded", {}).get("custom_fields") or [{}])[0]
