"""/knowledge: an agent's sources (status, size, date; paged), adding files, links and FAQ pairs
with live progress, deleting with confirmation, re-indexing one or all, and the agent's
corrections (each editable and deletable). Indexing and deleting run in the worker through the
task queue: the vector store has one owner process."""

from __future__ import annotations

import csv
import io
import re
from pathlib import PurePath
from typing import Any

from aiogram.types import CallbackQuery, ContentType, Message
from aiogram.utils.i18n import I18n, gettext
from aiogram_dialog import Dialog, DialogManager, ShowMode, Window
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import Button, SwitchTo

from bot.dialogs.states import Knowledge
from bot.dialogs.widgets import Err, T, actor, common_getter, guarded, nav, nav_to, paged
from bot.i18n import _
from core.ai.errors import ExtractionError
from core.ai.ingest.extract import SUPPORTED
from core.errors import InvalidInput, KommoAgentError, NotFound
from core.models.knowledge import KnowledgeSource, SourceStatus
from core.teaching.service import Corrections

TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # Bot API getFile serves files up to 20 MB
STATUS_ICON = {SourceStatus.QUEUED: "⏳", SourceStatus.PARSING: "⏳", SourceStatus.EMBEDDING: "⏳",
               SourceStatus.READY: "✅", SourceStatus.FAILED: "❌"}
_URL = re.compile(r"^https?://\S+$", re.I)
# "Q: ... A: ..." in the console's languages (В/О, Вопрос/Ответ, P/R).
_Q = r"(?:q|question|в|вопрос|p|pregunta)"
_A = r"(?:a|answer|о|ответ|r|respuesta)"
_PAIR = re.compile(rf"(?:^|\n)\s*{_Q}\s*[:.]\s*(.+?)\s*(?:\n\s*|\s+){_A}\s*[:.]\s*(.+?)(?=\n\s*{_Q}\s*[:.]|\Z)", re.I | re.S)


class RefusedUpload(InvalidInput):
    code = "knowledge_refused"


class UnsupportedUpload(InvalidInput):
    code = "knowledge_unsupported"


class OverUploadLimit(InvalidInput):
    code = "knowledge_over_limit"


class NotKnowledgeInput(InvalidInput):
    code = "knowledge_input_unknown"


class TooBigForTelegram(InvalidInput):
    code = "telegram_file_too_big"


def parse_pairs(text: str) -> list[dict[str, str]]:
    return [{"question": " ".join(q.split()), "answer": a.strip()} for q, a in _PAIR.findall(text or "")
            if q.strip() and a.strip()]


def csv_pairs(data: bytes) -> list[dict[str, str]] | None:
    """The pairs of a CSV whose header is question,answer (in any console language); None for
    any other CSV (a table to index as a document)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or len(rows[0]) < 2:
        return None
    head = [c.strip().casefold() for c in rows[0][:2]]
    if not (re.fullmatch(_Q, head[0], re.I) and re.fullmatch(_A, head[1], re.I)):
        return None
    return [{"question": r[0].strip(), "answer": r[1].strip()} for r in rows[1:] if len(r) >= 2 and r[0].strip()
            and r[1].strip()]


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _label(s: KnowledgeSource) -> str:
    size = human_size(s.size_bytes) if s.size_bytes else gettext(f"knowledge.kind_{s.kind.value}")
    date = s.updated_at.strftime("%d.%m") if s.updated_at else ""
    title = s.title if len(s.title) <= 40 else s.title[:39] + "…"
    return f"{STATUS_ICON.get(s.status, '•')} {title} · {size} · {date}"


def _intake(manager: DialogManager):
    return manager.middleware_data["services"].knowledge_intake()


def _corrections(manager: DialogManager) -> Corrections:
    services = manager.middleware_data["services"]
    return Corrections(services.storage, services.queue)


async def _agent(manager: DialogManager):
    org_id, operator = actor(manager)
    return await manager.middleware_data["agents"].get(org_id, operator, manager.dialog_data["agent_id"])


async def _source(manager: DialogManager, source_id: str) -> KnowledgeSource:
    """The source, if it is this organisation's and this agent's (ids from buttons are not trusted)."""
    org_id, _operator = actor(manager)
    source = await manager.middleware_data["services"].storage.knowledge.get(org_id, source_id)
    if source is None or source.agent_id != manager.dialog_data.get("agent_id"):
        raise NotFound("knowledge source not found", source_id=source_id)
    return source


async def agents_getter(dialog_manager: DialogManager, agents, org, operator, **_kw: Any) -> dict:
    found = await agents.list(org.id, operator)
    return {"agents": [{"id": a.id, "label": a.name} for a in found]}


@guarded
async def pick_agent(callback: CallbackQuery, widget: Any, manager: DialogManager, agent_id: str) -> None:
    org_id, operator = actor(manager)
    await manager.middleware_data["agents"].get(org_id, operator, agent_id)  # NotFound for another org's id
    manager.dialog_data["agent_id"] = agent_id
    await manager.switch_to(Knowledge.sources)


async def sources_getter(dialog_manager: DialogManager, **_kw: Any) -> dict:
    agent = await _agent(dialog_manager)
    sources = await _intake(dialog_manager).list_sources(agent.org_id, agent.id)
    return {"agent_name": agent.name, "count": len(sources), "has_sources": bool(sources),
            "sources": [{"id": s.id, "label": _label(s)} for s in sources]}


@guarded
async def open_source(callback: CallbackQuery, widget: Any, manager: DialogManager, source_id: str) -> None:
    await _source(manager, source_id)
    manager.dialog_data["source_id"] = source_id
    await manager.switch_to(Knowledge.source)


async def source_getter(dialog_manager: DialogManager, **_kw: Any) -> dict:
    source = await _source(dialog_manager, dialog_manager.dialog_data["source_id"])
    pairs = source.options.get("pairs", []) if source.options.get("corrections") else []
    return {"title": source.title, "kind": gettext(f"knowledge.kind_{source.kind.value}"),
            "status": gettext(f"knowledge.status_{source.status.value}"),
            "size": human_size(source.size_bytes) if source.size_bytes else "—",
            "date": source.updated_at.strftime("%Y-%m-%d %H:%M") if source.updated_at else "—",
            "chunks": source.chunks_total, "reason": source.error or "", "failed": bool(source.error),
            "is_corrections": bool(pairs),
            "pairs": [{"id": p.get("id", str(i)), "label": p["question"][:60]} for i, p in enumerate(pairs)]}


async def _start_progress(message: Message, manager: DialogManager, source: KnowledgeSource) -> None:
    text = _("knowledge.progress_queued", title=source.title)
    shown = await message.answer(text)
    i18n = I18n.get_current()
    manager.middleware_data["progress"].watch(message.bot, shown.chat.id, shown.message_id, source.org_id, source.id,
                                              i18n, i18n.current_locale, text)


def _check_document(message: Message, manager: DialogManager) -> tuple[str, int]:
    doc = message.document
    name, size = doc.file_name or "", doc.file_size or 0
    ext = PurePath(name.lower()).suffix
    if ext not in SUPPORTED:
        raise UnsupportedUpload("unsupported file type", ext=ext or "?")
    if size > TELEGRAM_DOWNLOAD_LIMIT:
        raise TooBigForTelegram("Telegram bots cannot download files over 20 MB", size=human_size(size))
    limit = manager.middleware_data["services"].settings.knowledge.max_file_bytes
    if size > limit:
        raise OverUploadLimit("over the upload limit", size=human_size(size), limit=human_size(limit))
    return name, size


@guarded
async def on_document(message: Message, widget: Any, manager: DialogManager) -> None:
    agent = await _agent(manager)
    name, _size = _check_document(message, manager)  # from the message: nothing is downloaded for a refusal
    data = (await message.bot.download(message.document)).read()
    intake = _intake(manager)
    try:
        pairs = csv_pairs(data) if name.lower().endswith(".csv") else None
        if pairs is not None:
            source = await intake.add_faq(agent.org_id, agent.id, pairs, title=name)
        else:
            source = await intake.add_file(agent.org_id, agent.id, name, data, message.document.mime_type)
    except ExtractionError as exc:
        raise RefusedUpload(str(exc), reason=str(exc)) from exc
    await _start_progress(message, manager, source)
    manager.show_mode = ShowMode.NO_UPDATE  # the progress message is the answer; the list stays above


@guarded
async def on_text(message: Message, widget: Any, manager: DialogManager) -> None:
    agent = await _agent(manager)
    text = (message.text or "").strip()
    intake = _intake(manager)
    try:
        if _URL.match(text):
            source = await intake.add_url(agent.org_id, agent.id, text)
        elif pairs := parse_pairs(text):
            source = await intake.add_faq(agent.org_id, agent.id, pairs, title=pairs[0]["question"][:60])
        else:
            raise NotKnowledgeInput("not a link or FAQ pairs")
    except KommoAgentError as exc:
        if isinstance(exc, ExtractionError) or exc.code == "url_refused":
            raise RefusedUpload(str(exc), reason=str(exc)) from exc
        raise
    await _start_progress(message, manager, source)
    manager.show_mode = ShowMode.NO_UPDATE  # the progress message is the answer; the list stays above


async def on_other(message: Message, widget: Any, manager: DialogManager) -> None:
    manager.show_mode = ShowMode.SEND
    manager.dialog_data["error"] = "⚠️ " + _("knowledge.send_what") + "\n\n"


async def _reindex(manager: DialogManager, source: KnowledgeSource) -> None:
    services = manager.middleware_data["services"]
    await services.storage.knowledge.set_status(source.org_id, source.id, SourceStatus.QUEUED, error=None)
    await services.queue.index_source(source.org_id, source.id)


@guarded
async def reindex_one(callback: CallbackQuery, widget: Any, manager: DialogManager) -> None:
    source = await _source(manager, manager.dialog_data["source_id"])
    await _reindex(manager, source)
    await callback.answer(_("knowledge.reindex_started", count=1))
    shown = await callback.message.answer(_("knowledge.progress_queued", title=source.title))
    i18n = I18n.get_current()
    manager.middleware_data["progress"].watch(callback.bot, shown.chat.id, shown.message_id, source.org_id,
                                              source.id, i18n, i18n.current_locale, shown.text)
    manager.show_mode = ShowMode.NO_UPDATE


@guarded
async def reindex_all(callback: CallbackQuery, widget: Any, manager: DialogManager) -> None:
    agent = await _agent(manager)
    sources = await _intake(manager).list_sources(agent.org_id, agent.id)
    for source in sources:
        await _reindex(manager, source)
    await callback.answer(_("knowledge.reindex_started", count=len(sources)))


@guarded
async def delete_source(callback: CallbackQuery, widget: Any, manager: DialogManager) -> None:
    source = await _source(manager, manager.dialog_data.pop("source_id"))
    services = manager.middleware_data["services"]
    await services.queue.delete_source(source.org_id, source.id)
    await callback.answer(_("knowledge.deleting", title=source.title))
    await manager.switch_to(Knowledge.sources)


def _pair(source: KnowledgeSource, pair_id: str) -> dict:
    found = next((p for p in source.options.get("pairs", []) if p.get("id") == pair_id), None)
    if found is None:
        raise NotFound("correction not found", pair_id=pair_id)
    return found


@guarded
async def open_pair(callback: CallbackQuery, widget: Any, manager: DialogManager, pair_id: str) -> None:
    _pair(await _source(manager, manager.dialog_data["source_id"]), pair_id)
    manager.dialog_data["pair_id"] = pair_id
    await manager.switch_to(Knowledge.pair)


async def pair_getter(dialog_manager: DialogManager, **_kw: Any) -> dict:
    pair = _pair(await _source(dialog_manager, dialog_manager.dialog_data["source_id"]),
                 dialog_manager.dialog_data["pair_id"])
    return {"question": pair["question"], "answer": pair["answer"]}


@guarded
async def on_pair_answer(message: Message, widget: Any, manager: DialogManager) -> None:
    manager.show_mode = ShowMode.SEND
    agent = await _agent(manager)
    await _corrections(manager).edit(agent.org_id, agent.id, manager.dialog_data["pair_id"], message.text or "")
    await message.answer(_("teach.saved"))
    await manager.switch_to(Knowledge.pair)


@guarded
async def delete_pair(callback: CallbackQuery, widget: Any, manager: DialogManager) -> None:
    agent = await _agent(manager)
    left = await _corrections(manager).delete(agent.org_id, agent.id, manager.dialog_data.pop("pair_id"))
    await callback.answer(_("teach.deleted"))
    await manager.switch_to(Knowledge.source if left else Knowledge.sources)


def knowledge_dialog() -> Dialog:
    inputs = (MessageInput(on_document, content_types=[ContentType.DOCUMENT]),
              MessageInput(on_text, content_types=[ContentType.TEXT]), MessageInput(on_other))
    return Dialog(
        Window(
            Err(), T("knowledge.pick_agent"),
            paged("agents", "kn_agent", pick_agent),
            nav(first=True),
            state=Knowledge.agent, getter=agents_getter,
        ),
        Window(
            Err(), T("knowledge.title"), T("knowledge.how_to_add"),
            paged("sources", "kn_src", open_source),
            Button(T("knowledge.reindex_all"), id="kn_reall", on_click=reindex_all, when="has_sources"),
            *inputs,
            nav_to(Knowledge.agent),
            state=Knowledge.sources, getter=sources_getter,
        ),
        Window(
            Err(), T("knowledge.card"), T("knowledge.card_reason", when="failed"),
            T("knowledge.corrections_hint", when="is_corrections"),
            paged("pairs", "kn_pair", open_pair),
            Button(T("knowledge.reindex"), id="kn_reone", on_click=reindex_one),
            SwitchTo(T("knowledge.delete"), id="kn_del", state=Knowledge.delete),
            nav_to(Knowledge.sources),
            state=Knowledge.source, getter=source_getter,
        ),
        Window(
            Err(), T("knowledge.delete_confirm"),
            Button(T("knowledge.delete_yes"), id="kn_del_yes", on_click=delete_source),
            nav_to(Knowledge.source),
            state=Knowledge.delete, getter=source_getter,
        ),
        Window(
            Err(), T("teach.pair"),
            SwitchTo(T("teach.edit"), id="kn_pedit", state=Knowledge.pair_edit),
            SwitchTo(T("teach.delete"), id="kn_pdel", state=Knowledge.pair_delete),
            nav_to(Knowledge.source),
            state=Knowledge.pair, getter=pair_getter,
        ),
        Window(
            Err(), T("teach.edit_ask"),
            MessageInput(on_pair_answer, content_types=[ContentType.TEXT]),
            nav_to(Knowledge.pair),
            state=Knowledge.pair_edit, getter=pair_getter,
        ),
        Window(
            Err(), T("teach.delete_confirm"),
            Button(T("teach.delete_yes"), id="kn_pdel_yes", on_click=delete_pair),
            nav_to(Knowledge.pair),
            state=Knowledge.pair_delete, getter=pair_getter,
        ),
        getter=common_getter,
    )
