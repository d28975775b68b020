"""A fake Telegram Bot API on 127.0.0.1 for the real `aiogram.Bot` (reached through
`TelegramAPIServer.from_base(fake.base_url)`).

It answers like the real API where the console depends on it: 400 "message is not modified" on
an edit that changes nothing, 400 on callback data over 64 bytes or a text over 4096 characters,
400 when the message to edit or delete does not exist, 403 for a user who blocked the bot, and a
429 with `retry_after` on demand. It records every call, keeps each chat's messages as the user
would see them, serves queued updates to getUpdates and files to getFile and the download URL.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_ID = 424242
TOKEN = f"{BOT_ID}:AAFakeTokenForTestsOnly_0123456789abc"
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "Kommo Agent", "username": "kommo_agent_test_bot"}
DOWNLOAD_LIMIT = 20 * 1024 * 1024
_JSON_FIELDS = ("reply_markup", "entities", "link_preview_options", "commands", "scope", "reply_parameters")


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float


@dataclass
class ChatMessage:
    message_id: int
    chat_id: int
    text: str | None
    reply_markup: dict | None = None
    document: dict | None = None
    deleted: bool = False
    from_bot: bool = True

    def buttons(self) -> list[dict]:
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [b for row in rows for b in row]


@dataclass
class FakeTelegram:
    token: str = TOKEN
    calls: list[Call] = field(default_factory=list)
    messages: dict[tuple[int, int], ChatMessage] = field(default_factory=dict)
    commands: dict[str, list[dict]] = field(default_factory=dict)  # language_code ("" = default) -> commands
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # file_id -> (file_path, content)
    sizes: dict[str, int] = field(default_factory=dict)  # file_id -> reported size, where not len(content)
    blocked: set[int] = field(default_factory=set)  # chats whose user blocked the bot
    updates: asyncio.Queue = field(default_factory=asyncio.Queue)
    _fail: dict[str, list[tuple[int, str, dict]]] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1000))
    _update_ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    base_url: str = ""

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # --- test controls -----------------------------------------------------------------
    def fail_next(self, method: str, status: int = 429, description: str = "Too Many Requests: retry after 1",
                  **parameters: Any) -> None:
        """The next call of `method` gets this error (e.g. 429 with retry_after=1)."""
        self._fail.setdefault(method, []).append((status, description, parameters))

    def add_file(self, file_id: str, content: bytes, file_path: str = "documents/file.txt",
                 size: int | None = None) -> None:
        """`size`: what Telegram knows the file's size to be (a big file stood in for by a few bytes)."""
        self.files[file_id] = (file_path, content)
        if size is not None:
            self.sizes[file_id] = size

    def queue_update(self, update: dict) -> None:
        self.updates.put_nowait(update)

    def next_message_id(self) -> int:
        """An id for a message the user sends (they share the chat's numbering)."""
        return next(self._ids)

    def add_user_message(self, chat_id: int, message_id: int, text: str | None) -> None:
        self.messages[(chat_id, message_id)] = ChatMessage(message_id, chat_id, text, from_bot=False)

    def calls_of(self, method: str, chat_id: int | None = None) -> list[Call]:
        return [c for c in self.calls if c.method == method
                and (chat_id is None or str(c.params.get("chat_id")) == str(chat_id))]

    def chat(self, chat_id: int) -> list[ChatMessage]:
        """What the user sees now: the bot's messages in order, deleted ones left out."""
        return [m for (c, _), m in sorted(self.messages.items()) if c == chat_id and m.from_bot and not m.deleted]

    def last(self, chat_id: int) -> ChatMessage:
        return self.chat(chat_id)[-1]

    def last_with_buttons(self, chat_id: int) -> ChatMessage:
        return [m for m in self.chat(chat_id) if m.buttons()][-1]

    # --- the API -------------------------------------------------------------------------
    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            return await request.json()
        form = await request.post()
        params: dict[str, Any] = {}
        for key, value in form.items():
            if isinstance(value, web.FileField):
                params[key] = {"filename": value.filename, "content": value.file.read()}
            elif key in _JSON_FIELDS:
                params[key] = json.loads(value)
            else:
                params[key] = value
        for key, value in list(params.items()):  # aiogram sends files as "attach://<field>"
            if isinstance(value, str) and value.startswith("attach://"):
                params[key] = params.pop(value.removeprefix("attach://"), value)
        return params

    @staticmethod
    def _error(status: int, description: str, **parameters: Any) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=status)

    @staticmethod
    def _ok(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await self._params(request)
        self.calls.append(Call(method, params, time.monotonic()))
        queued = self._fail.get(method)
        if queued:
            status, description, parameters = queued.pop(0)
            return self._error(status, description, **parameters)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return self._error(404, "Not Found: method not found")
        return await handler(params)

    def _chat_id(self, params: dict) -> int:
        return int(params["chat_id"])

    def _check_markup(self, markup: dict | None) -> str | None:
        for row in (markup or {}).get("inline_keyboard") or []:
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(data.encode()) <= 64:
                    return "Bad Request: BUTTON_DATA_INVALID"
                if not button.get("text"):
                    return "Bad Request: text buttons are unallowed in the inline keyboard"
        return None

    def _check_text(self, text: str | None, limit: int = 4096) -> str | None:
        if text is None or not str(text).strip():
            return "Bad Request: message text is empty"
        if len(str(text)) > limit:
            return "Bad Request: message is too long"
        return None

    def _message_json(self, m: ChatMessage) -> dict:
        out: dict[str, Any] = {"message_id": m.message_id, "from": BOT_USER, "date": int(time.time()),
                               "chat": {"id": m.chat_id, "type": "private", "first_name": "User"}}
        if m.text is not None:
            out["text" if m.document is None else "caption"] = m.text
        if m.reply_markup and m.reply_markup.get("inline_keyboard"):
            out["reply_markup"] = m.reply_markup
        if m.document is not None:
            out["document"] = m.document
        return out

    def _store(self, chat_id: int, text: str | None, markup: dict | None, document: dict | None = None) -> ChatMessage:
        m = ChatMessage(next(self._ids), chat_id, text, markup, document)
        self.messages[(chat_id, m.message_id)] = m
        return m

    async def _m_getMe(self, params: dict) -> web.Response:
        return self._ok({**BOT_USER, "can_join_groups": True, "can_read_all_group_messages": False,
                         "supports_inline_queries": False})

    async def _m_sendMessage(self, params: dict) -> web.Response:
        chat_id = self._chat_id(params)
        if chat_id in self.blocked:
            return self._error(403, "Forbidden: bot was blocked by the user")
        error = self._check_text(params.get("text")) or self._check_markup(params.get("reply_markup"))
        if error:
            return self._error(400, error)
        return self._ok(self._message_json(self._store(chat_id, params["text"], params.get("reply_markup"))))

    async def _m_sendDocument(self, params: dict) -> web.Response:
        chat_id = self._chat_id(params)
        if chat_id in self.blocked:
            return self._error(403, "Forbidden: bot was blocked by the user")
        doc = params.get("document")
        if not isinstance(doc, dict):
            return self._error(400, "Bad Request: wrong file identifier/HTTP URL specified")
        caption = params.get("caption")
        if caption is not None and len(caption) > 1024:
            return self._error(400, "Bad Request: message caption is too long")
        file_id = f"doc{next(self._ids)}"
        self.files[file_id] = (f"documents/{doc['filename']}", doc["content"])
        meta = {"file_id": file_id, "file_unique_id": file_id + "u", "file_name": doc["filename"],
                "file_size": len(doc["content"])}
        return self._ok(self._message_json(self._store(chat_id, caption, params.get("reply_markup"), meta)))

    async def _m_sendPhoto(self, params: dict) -> web.Response:
        chat_id = self._chat_id(params)
        if chat_id in self.blocked:
            return self._error(403, "Forbidden: bot was blocked by the user")
        photo = params.get("photo")
        size = len(photo["content"]) if isinstance(photo, dict) else 0
        m = self._store(chat_id, params.get("caption"), params.get("reply_markup"))
        out = self._message_json(m)
        out["photo"] = [{"file_id": f"ph{m.message_id}", "file_unique_id": f"ph{m.message_id}u",
                         "width": 100, "height": 100, "file_size": size}]
        return self._ok(out)

    def _existing(self, params: dict) -> ChatMessage | None:
        m = self.messages.get((self._chat_id(params), int(params["message_id"])))
        return None if m is None or m.deleted or not m.from_bot else m

    async def _m_editMessageText(self, params: dict) -> web.Response:
        m = self._existing(params)
        if m is None:
            return self._error(400, "Bad Request: message to edit not found")
        markup = params.get("reply_markup")
        error = self._check_text(params.get("text")) or self._check_markup(markup)
        if error:
            return self._error(400, error)
        if params["text"] == m.text and (markup or None) == (m.reply_markup or None):
            return self._error(400, "Bad Request: message is not modified: specified new message content and "
                                    "reply markup are exactly the same as a current content and reply markup "
                                    "of the message")
        m.text, m.reply_markup = params["text"], markup
        return self._ok(self._message_json(m))

    async def _m_editMessageReplyMarkup(self, params: dict) -> web.Response:
        m = self._existing(params)
        if m is None:
            return self._error(400, "Bad Request: message to edit not found")
        markup = params.get("reply_markup")
        if not (markup or {}).get("inline_keyboard"):
            markup = None
        error = self._check_markup(markup)
        if error:
            return self._error(400, error)
        if (markup or None) == (m.reply_markup or None):
            return self._error(400, "Bad Request: message is not modified: specified new message content and "
                                    "reply markup are exactly the same as a current content and reply markup "
                                    "of the message")
        m.reply_markup = markup
        return self._ok(self._message_json(m))

    async def _m_deleteMessage(self, params: dict) -> web.Response:
        m = self.messages.get((self._chat_id(params), int(params["message_id"])))
        if m is None or m.deleted:
            return self._error(400, "Bad Request: message to delete not found")
        m.deleted = True
        return self._ok(True)

    async def _m_answerCallbackQuery(self, params: dict) -> web.Response:
        text = params.get("text")
        if text is not None and len(text) > 200:
            return self._error(400, "Bad Request: MESSAGE_TOO_LONG")
        return self._ok(True)

    async def _m_setMyCommands(self, params: dict) -> web.Response:
        commands = params.get("commands") or []
        for c in commands:
            if not (1 <= len(c["command"]) <= 32 and 1 <= len(c["description"]) <= 256):
                return self._error(400, "Bad Request: BOT_COMMAND_INVALID")
        self.commands[params.get("language_code") or ""] = commands
        return self._ok(True)

    async def _m_sendChatAction(self, params: dict) -> web.Response:
        return self._ok(True)

    async def _m_setWebhook(self, params: dict) -> web.Response:
        return self._ok(True)

    async def _m_deleteWebhook(self, params: dict) -> web.Response:
        return self._ok(True)

    async def _m_getFile(self, params: dict) -> web.Response:
        found = self.files.get(params.get("file_id", ""))
        if found is None:
            return self._error(400, "Bad Request: wrong file_id or the file is temporarily unavailable")
        path, content = found
        if self.sizes.get(params["file_id"], len(content)) > DOWNLOAD_LIMIT:  # the Bot API serves up to 20 MB
            return self._error(400, "Bad Request: file is too big")
        return self._ok({"file_id": params["file_id"], "file_unique_id": params["file_id"] + "u",
                         "file_size": len(content), "file_path": path})

    async def _m_getUpdates(self, params: dict) -> web.Response:
        timeout = float(params.get("timeout") or 0)
        batch = []
        try:
            batch.append(await asyncio.wait_for(self.updates.get(), timeout=max(timeout, 0.01)))
        except TimeoutError:
            return self._ok([])
        while not self.updates.empty():
            batch.append(self.updates.get_nowait())
        for u in batch:
            u.setdefault("update_id", next(self._update_ids))
        return self._ok(batch)

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        for p, content in self.files.values():
            if p == path:
                return web.Response(body=content)
        return web.Response(status=404)
