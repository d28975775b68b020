"""The four ways a reply reaches the customer (section 5 of ../shared/kommo-api.md).

- `salesbot`: a bot waits in a widget_request step; we POST its single-use `return_url`: a reply
  of at most 80 characters (the `show` cap) as a `show` handler, a longer one in `data.reply`
  for the bot's next "send message {{json.reply}}" step; a turn without a reply continues the
  bot with an empty `data.reply` so it does not wait forever.
- `salesbot_run`: write the reply into the lead field `account.reply_field_id`, then run the
  prepared bot `account.salesbot_bot_id` that sends that field.
- `chats_api`: our own channel, a signed amojo `new_message`.
- `note_draft`: a draft in an internal note for a manager to copy into the chat; it reaches no
  customer by itself (the default until delivery is set up).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import urlsplit

from core.kommo.delivery.chats import ChatsClient
from core.kommo.errors import DeliverySetupBroken, KommoNotFound, KommoValidationError
from core.kommo.http.api import KommoApi
from core.models.agent import DeliveryMode
from core.models.events import ActionRecord
from core.models.kommo import KommoAccount

# The note must say plainly that nobody received it: Kommo has no "send this note" button.
DRAFT_PREFIX = ("AI draft, NOT sent to the customer: copy it into the chat / "
                "Черновик ИИ, клиенту НЕ отправлен: скопируйте в чат:\n\n")
SHOW_LIMIT = 80
_CONTINUE_PATH = re.compile(r"^/api/v4/salesbot/\d+/continue/[\w-]+$")


def draft_text(text: str) -> str:
    return DRAFT_PREFIX + text


class ReplySender:
    def __init__(self, api: KommoApi, chats: ChatsClient) -> None:
        self.api = api
        self.chats = chats

    @staticmethod
    def setup_problem(account: KommoAccount, mode: DeliveryMode) -> str | None:
        """What the account's set-up lacks for `mode`, whatever the message (see check)."""
        if mode == DeliveryMode.SALESBOT_RUN and not (account.reply_field_id and account.salesbot_bot_id):
            return "salesbot_run mode needs the account's reply field and bot id: set delivery up (/kommo or kommo delivery)"
        if mode == DeliveryMode.CHATS_API and not account.chats_scope_id:
            return "chats_api mode needs the account connected to this project's own chat channel"
        return None

    def check(self, account: KommoAccount, mode: DeliveryMode, context: dict[str, Any]) -> str | None:
        """Why this mode cannot be used for this reply, or None."""
        if mode == DeliveryMode.SALESBOT:
            parts = urlsplit(str(context.get("return_url") or ""))
            if not _CONTINUE_PATH.match(parts.path):
                return "salesbot mode needs the widget_request return_url"
            if parts.hostname and parts.hostname != account.host:
                # The account token must never be sent to a host the webhook body chose.
                return f"return_url host {parts.hostname} is not the account host {account.host}"
        if mode == DeliveryMode.SALESBOT_RUN and not (account.reply_field_id and account.salesbot_bot_id):
            return "salesbot_run mode needs the account's reply field and bot id configured"
        if mode == DeliveryMode.CHATS_API:
            if not account.chats_scope_id:
                return "chats_api mode needs the account connected to our chat channel"
            if not context.get("conversation_id") or not isinstance(context.get("receiver"), dict):
                return "chats_api mode needs conversation_id and receiver"
        return None

    async def send(self, account: KommoAccount, mode: DeliveryMode, lead_id: int, text: str,
                   context: dict[str, Any], key: str) -> dict[str, Any]:
        if mode == DeliveryMode.SALESBOT:
            return await self._salesbot(account, text, context)
        if mode == DeliveryMode.SALESBOT_RUN:
            return await self._salesbot_run(account, lead_id, text)
        if mode == DeliveryMode.CHATS_API:
            # Our message id is derived from the idempotency key, so a resend carries the same id.
            msgid = hashlib.sha256(key.encode()).hexdigest()[:32]
            sent = await self.chats.send_text(account, conversation_id=context["conversation_id"], text=text,
                                              msgid=msgid, receiver=context["receiver"],
                                              conversation_ref_id=context.get("chat_id"))
            return {"msgid": sent.get("msgid"), "ref_id": msgid}
        note = await self.api.add_lead_note(account, lead_id, draft_text(text))
        return {"note_id": note.get("id")}

    async def _salesbot(self, account: KommoAccount, text: str, context: dict[str, Any]) -> dict[str, Any]:
        """A reply within the `show` cap is shown by the widget step itself; a longer one goes in
        `data.reply` for the bot's next "send message {{json.reply}}" step (the printed steps
        put a condition on it, so a shown reply is not sent twice)."""
        path = urlsplit(context["return_url"]).path
        handlers: list[dict[str, Any]] = []
        shown = len(text) <= SHOW_LIMIT
        if shown:
            handlers.append({"handler": "show", "params": {"type": "text", "value": text}})
        if context.get("goto_step") is not None:
            handlers.append({"handler": "goto", "params": {"type": context.get("goto_type", "question"),
                                                           "step": int(context["goto_step"])}})
        data = {**(context.get("data") or {}), "reply": "" if shown else text, "status": "replied"}
        await self.api.salesbot_continue(account, path, {"data": data, "execute_handlers": handlers})
        return {"continued": path.rsplit("/", 1)[-1], "handlers": len(handlers), "shown": shown}

    async def _salesbot_run(self, account: KommoAccount, lead_id: int, text: str) -> dict[str, Any]:
        bot_id, field_id = account.salesbot_bot_id, account.reply_field_id
        try:
            await self.api.update_lead(account, lead_id, {"custom_fields_values": [
                {"field_id": field_id, "values": [{"value": text}]}]})
        except KommoValidationError as exc:
            raise DeliverySetupBroken(f"Kommo refused the reply field {field_id} (deleted?); set delivery up again "
                                      f"(/kommo or kommo delivery): {exc}"[:300],
                                      what="field", field_id=field_id, bot_id=bot_id,
                                      version=account.delivery_version) from exc
        try:
            endpoint = await self.api.salesbot_run(account, bot_id, lead_id)
        except (KommoNotFound, KommoValidationError) as exc:
            # Both endpoints refused: the bot is gone or switched off (the lead exists: we just wrote it).
            raise DeliverySetupBroken(f"Kommo refused to run Salesbot {bot_id} (deleted or switched off?); switch "
                                      f"it on or set delivery up again (/kommo or kommo delivery): {exc}"[:300],
                                      what="bot", field_id=field_id, bot_id=bot_id, version=account.delivery_version) from exc
        return {"bot_id": bot_id, "field_id": field_id, "endpoint": endpoint}

    async def release_salesbot(self, account: KommoAccount, return_url: str, status: str) -> dict[str, Any]:
        """Continue a waiting bot with no reply (handoff, quota, out of hours, skipped, error):
        an empty `data.reply`, so the bot's condition step ends it instead of waiting forever."""
        path = urlsplit(return_url).path
        await self.api.salesbot_continue(account, path, {"data": {"reply": "", "status": status[:40]},
                                                         "execute_handlers": []})
        return {"continued": path.rsplit("/", 1)[-1], "status": status[:40]}

    def note_finder(self, account: KommoAccount, lead_id: int, text: str):
        async def find(record: ActionRecord) -> dict | None:
            started = record.created_at.timestamp() - 60
            for note in await self.api.lead_notes(account, lead_id):
                if (note.get("params") or {}).get("text") == text and note.get("created_at", 0) >= started:
                    return {"note_id": note.get("id")}
            return None
        return find

    def finder(self, account: KommoAccount, mode: DeliveryMode, lead_id: int, text: str):
        # Only a note can be found again in Kommo; other modes fall back to the staleness rule.
        return self.note_finder(account, lead_id, draft_text(text)) if mode == DeliveryMode.NOTE_DRAFT else None
