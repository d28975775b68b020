"""Adding and removing knowledge sources (the Mongo side); indexing lives in `core.ai.ingest.indexing`."""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import PurePath

from core.ai.errors import AlreadyAdded, ExtractionError
from core.ai.ingest.columns import ColumnOverrides
from core.ai.ingest.extract import check_upload
from core.clock import utcnow
from core.config import KnowledgeSettings
from core.errors import NotFound
from core.ids import new_id
from core.models.knowledge import KnowledgeSource, SourceKind, SourceStatus
from core.security.egress import EgressPolicy, check_url

TABLE_EXTENSIONS = (".csv", ".xlsx")


def _column_options(ext: str, columns: dict) -> dict:
    if ext not in TABLE_EXTENSIONS:
        raise ExtractionError("column roles apply to tables (CSV, XLSX files) only")
    return ColumnOverrides.of(columns).as_options()


def gen_key(source_id: str, generation: int) -> str:
    return f"{source_id}:{generation}"


class SourceIntake:
    """Creates sources (status queued) and hands them to the task queue for indexing."""

    def __init__(self, storage, settings: KnowledgeSettings, queue=None) -> None:
        self.storage = storage
        self.settings = settings
        self.queue = queue  # core.ports.TaskQueue; None: the caller indexes inline (CLI, tests)
        self.egress = EgressPolicy.of(settings.allow_hosts, settings.allowed_ports)

    async def _create(self, org_id: str, source: KnowledgeSource) -> KnowledgeSource:
        await self.storage.knowledge.insert(org_id, source)
        if self.queue is not None:
            await self.queue.index_source(org_id, source.id)
        return source

    async def _same(self, org_id: str, agent_id: str, what: str, matches) -> KnowledgeSource | None:
        """The agent's source with this content: a failed one is queued again (re-adding is how
        a failed source is retried); any other raises `AlreadyAdded`."""
        for source in await self.storage.knowledge.for_agent(org_id, agent_id):
            if not matches(source):
                continue
            if source.status != SourceStatus.FAILED:
                raise AlreadyAdded(f"{what} is already added as {source.id} ({source.status})",
                                   source_id=source.id)
            await self.storage.knowledge.set_status(org_id, source.id, SourceStatus.QUEUED, error=None)
            if self.queue is not None:
                await self.queue.index_source(org_id, source.id)
            return source.model_copy(update={"status": SourceStatus.QUEUED, "error": None})
        return None

    async def discard(self, org_id: str, source_id: str) -> None:
        """Forget a source that never became ready (its vectors were removed when it failed):
        its record and uploaded file, without touching the vector store."""
        source = await self.storage.knowledge.get(org_id, source_id)
        if source is None:
            return
        if source.file_id:
            try:
                await self.storage.files.delete(org_id, source.file_id)
            except NotFound:
                pass
        await self.storage.knowledge.delete(org_id, source_id)

    async def add_file(self, org_id: str, agent_id: str, filename: str, data: bytes,
                       content_type: str | None = None, *, columns: dict | None = None) -> KnowledgeSource:
        """`columns`: the operator's column roles of a table ({"embed"|"keyword"|"skip": [header, ...]},
        see `core.ai.ingest.columns`); checked against the table's headers when it is indexed."""
        ext = check_upload(filename, len(data), self.settings)  # refuse before storing anything
        digest = hashlib.sha256(data).hexdigest()
        options: dict = {"sha256": digest}
        if columns:
            options["columns"] = _column_options(ext, columns)
        again = await self._same(org_id, agent_id, filename, lambda s: s.options.get("sha256") == digest)
        if again is not None:
            return again
        mime = content_type or mimetypes.guess_type(filename)[0]
        file_id = await self.storage.files.put(org_id, filename, data, mime)
        return await self._create(org_id, KnowledgeSource(
            _id=new_id("src"), org_id=org_id, agent_id=agent_id, kind=SourceKind.FILE, title=filename,
            file_id=file_id, mime=mime, size_bytes=len(data), updated_at=utcnow(), options=options))

    async def set_columns(self, org_id: str, source_id: str, columns: dict | None) -> KnowledgeSource:
        """Store the operator's column roles on a table source (None or {}: back to the automatic
        ones); they apply from its next indexing."""
        source = await self.storage.knowledge.get(org_id, source_id)
        if source is None:
            raise NotFound("knowledge source not found", source_id=source_id)
        options = dict(source.options)
        if columns:
            options["columns"] = _column_options(PurePath(source.title.lower()).suffix, columns)
        else:
            options.pop("columns", None)
        await self.storage.knowledge.update(org_id, source_id, {"options": options})
        return source.model_copy(update={"options": options})

    async def add_url(self, org_id: str, agent_id: str, url: str, *, crawl: bool = False) -> KnowledgeSource:
        """Refused before anything is stored when the link leads where the server must not go
        (every hop is checked again when it is fetched)."""
        await check_url(url, self.egress)
        again = await self._same(org_id, agent_id, url, lambda s: s.kind == SourceKind.URL and s.url == url)
        if again is not None:
            return again
        return await self._create(org_id, KnowledgeSource(
            _id=new_id("src"), org_id=org_id, agent_id=agent_id, kind=SourceKind.URL, title=url, url=url,
            updated_at=utcnow(), options={"crawl": crawl}))

    async def add_faq(self, org_id: str, agent_id: str, pairs: list[dict[str, str]],
                      title: str = "FAQ") -> KnowledgeSource:
        if not any(p.get("question", "").strip() and p.get("answer", "").strip() for p in pairs):
            raise ExtractionError("no question with an answer was given")
        again = await self._same(org_id, agent_id, title,
                                 lambda s: s.kind == SourceKind.FAQ and s.options.get("pairs") == pairs)
        if again is not None:
            return again
        return await self._create(org_id, KnowledgeSource(
            _id=new_id("src"), org_id=org_id, agent_id=agent_id, kind=SourceKind.FAQ, title=title,
            updated_at=utcnow(), options={"pairs": pairs}))

    async def add_text(self, org_id: str, agent_id: str, title: str, text: str = "", *,
                       sections: list[dict] | None = None) -> KnowledgeSource:
        if not text.strip() and not sections:
            raise ExtractionError("the text is empty")
        options = {"sections": sections} if sections else {"text": text}
        return await self._create(org_id, KnowledgeSource(
            _id=new_id("src"), org_id=org_id, agent_id=agent_id, kind=SourceKind.TEXT, title=title,
            size_bytes=len(text.encode()), updated_at=utcnow(), options=options))

    async def list_sources(self, org_id: str, agent_id: str) -> list[KnowledgeSource]:
        return await self.storage.knowledge.for_agent(org_id, agent_id)

    async def delete_source(self, org_id: str, source_id: str) -> None:
        """Remove the source, all its vectors (every generation) and its uploaded file."""
        source = await self.storage.knowledge.get(org_id, source_id)
        if source is None:
            raise NotFound("knowledge source not found", source_id=source_id)
        await self.store.delete(org_id, source.agent_id, where={"source_id": source_id})
        if source.file_id:
            try:
                await self.storage.files.delete(org_id, source.file_id)
            except NotFound:
                pass
        await self.storage.knowledge.delete(org_id, source_id)
