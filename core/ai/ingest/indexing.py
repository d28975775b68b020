"""Knowledge ingestion: add sources, then index them (parse -> clean -> chunk -> embed -> upsert).

Re-indexing is atomic for readers: chunks are written under a new generation, the source's live
generation is flipped in one Mongo write, and only then are older generations deleted; the
retriever only reads live generations. Identical content is embedded once: chunk vectors are
reused by content hash from any point of the same agent, and a source whose content hash did not
change is not re-embedded at all.

A chunk of several sentences is stored with one extra vector per sentence (`parts`, on the same
point, see `core.storage.vectors.base`), embedded in the same call as the chunks; table rows
have none (`core.ai.ingest.split.chunk_parts`). The payload's `parts` says how many a chunk has. With
a cross-lingual encoder (`core.ai.encoders.crosslingual`), every chunk also gets its vector `xl`; a
reused chunk stored without one gets it added, without embedding the chunk again.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from core.ai.encoders.crosslingual import CrossLingualEncoder
from core.ai.encoders.sparse import SparseEncoder
from core.ai.errors import ExtractionError
from core.ai.ingest.extract import Section
from core.ai.ingest.extract.faq import extract_faq
from core.ai.ingest.extract.guard import GuardedExtractor
from core.ai.ingest.extract.html import extract_url
from core.ai.ingest.extract.text import parse_markdown
from core.ai.ingest.sources import SourceIntake, gen_key
from core.ai.ingest.split import embedding_text, part_texts, split_sections
from core.ai.types import Chunk
from core.config import KnowledgeSettings
from core.errors import KommoAgentError, NotFound
from core.logging import get_logger
from core.models.knowledge import KnowledgeSource, SourceKind, SourceStatus
from core.storage.vectors.base import VectorPoint

log = get_logger(__name__)
_POINT_NS = uuid.UUID("6f1c9a52-0d7e-4b8a-9a43-2a1f3c5e7d90")
# Part of every source's content hash: sources indexed before sentence vectors (or cross-lingual
# vectors) existed are not "unchanged", so re-indexing them adds what is missing (chunk vectors
# are still reused by hash).
PARTS_LAYOUT = "parts:v1"
XL_LAYOUT = "xl:v1"
Progress = Callable[[KnowledgeSource], Awaitable[None]]


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class IngestionService(SourceIntake):
    """Indexes knowledge sources of an agent into the vector store (see the module docstring)."""

    def __init__(self, storage, store, embedder, settings: KnowledgeSettings, queue=None, *,
                 sparse: SparseEncoder | None = None, batch_size: int = 64,
                 crosslingual: CrossLingualEncoder | None = None, extractor: GuardedExtractor | None = None,
                 room=None) -> None:
        super().__init__(storage, settings, queue, room=room)
        self.extractor = extractor or GuardedExtractor.shared(settings)  # parsers run in a guarded child
        self.store = store
        self.embedder = embedder
        self.sparse = sparse or SparseEncoder()
        self.batch_size = batch_size
        self.crosslingual = crosslingual

    async def _sections(self, source: KnowledgeSource) -> list[Section]:
        if source.kind == SourceKind.FILE:
            data = await self.storage.files.get(source.org_id, source.file_id)
            return await self.extractor.aextract(source.title, data, source.options.get("title", ""))
        if source.kind == SourceKind.URL:
            return await extract_url(source.url, max_bytes=self.settings.url_max_bytes,
                                     timeout_s=self.settings.url_timeout_s,
                                     crawl=bool(source.options.get("crawl")),
                                     max_pages=self.settings.crawl_max_pages, policy=self.egress)
        if source.kind == SourceKind.FAQ:
            return extract_faq(source.options.get("pairs", []), source.title)
        if "sections" in source.options:  # prepared sections (evaluation, imports)
            return [Section(s["text"], s.get("heading_path", []), bool(s.get("atomic")), s.get("metadata", {}),
                            bool(s.get("sentence_vectors", True)))
                    for s in source.options["sections"]]
        sections = parse_markdown(source.options.get("text", ""), source.title)
        if not sections:
            raise ExtractionError("the text is empty")
        return sections

    async def index_source(self, org_id: str, source_id: str, *, force: bool = False,
                           on_progress: Progress | None = None) -> KnowledgeSource:
        """Index one source; idempotent (safe to run twice). Failures end in status `failed`
        with the reason, and the previous generation stays live."""
        repo = self.storage.knowledge
        source = await repo.get(org_id, source_id)
        if source is None:
            raise NotFound("knowledge source not found", source_id=source_id)
        new_gen = source.generation + 1
        try:
            await repo.set_status(org_id, source_id, SourceStatus.PARSING, error=None)
            sections = await self._sections(source)
            chunks = await asyncio.to_thread(split_sections, sections, self.settings.chunk_tokens,
                                             self.settings.chunk_overlap_tokens)
            if not chunks:
                raise ExtractionError("no text was found to index")
            texts = [embedding_text(c, source.title) for c in chunks]
            parts = [part_texts(c, source.title) for c in chunks]
            layout = PARTS_LAYOUT + (f" {XL_LAYOUT}" if self.crosslingual else "")
            content_hash = _hash(self.embedder.model_name + "\n" + layout + "\n" + "\n\x00".join(texts))
            live = source.generation > 0 and source.status == SourceStatus.READY
            if not force and live and content_hash == source.content_hash:
                await repo.set_status(org_id, source_id, SourceStatus.READY, chunks_done=len(chunks),
                                      chunks_total=len(chunks))
                return await repo.get(org_id, source_id)
            await repo.set_status(org_id, source_id, SourceStatus.EMBEDDING, chunks_done=0,
                                  chunks_total=len(chunks), error=None)
            await self._write_generation(source, new_gen, chunks, texts, parts, on_progress)
            # The flip: one write makes the new generation the one readers see.
            await repo.set_status(org_id, source_id, SourceStatus.READY, generation=new_gen,
                                  content_hash=content_hash, chunks_done=len(chunks),
                                  chunks_total=len(chunks), error=None)
        except Exception as exc:
            # Any failure (a model that cannot run included, not only bad input) must end in
            # `failed` with a reason; otherwise the source would look busy forever.
            if isinstance(exc, (KommoAgentError, OSError, ValueError)):
                reason = str(exc)
            else:
                log.exception("ingest_unexpected_error", org_id=org_id, source_id=source_id)
                reason = f"indexing failed unexpectedly ({type(exc).__name__}); try again later"
            await self.store.delete(org_id, source.agent_id, where={"gen_key": gen_key(source_id, new_gen)})
            await repo.set_status(org_id, source_id, SourceStatus.FAILED, error=reason)
            raise
        old = [gen_key(source_id, g) for g in range(0, new_gen)]
        await self.store.delete(org_id, source.agent_id, where={"source_id": source_id, "gen_key": old})
        return await repo.get(org_id, source_id)

    async def _reusable(self, org_id: str, agent_id: str, wanted: dict[str, int]) -> dict[str, VectorPoint]:
        """Stored vectors by chunk hash, for hashes whose point has the expected number of parts
        (a point stored before sentence vectors has none, and is re-embedded)."""
        hashes = sorted(wanted)
        found: dict[str, VectorPoint] = {}
        for i in range(0, len(hashes), 500):
            for p in await self.store.fetch(org_id, agent_id, where={"chunk_hash": hashes[i:i + 500]}):
                h = p.payload.get("chunk_hash", "")
                if p.dense and len(p.parts or []) == wanted.get(h, -1):
                    found.setdefault(h, p)
        return found

    async def _write_generation(self, source: KnowledgeSource, gen: int, chunks: list[Chunk],
                                texts: list[str], parts: list[list[str]], on_progress: Progress | None) -> None:
        org_id, agent_id = source.org_id, source.agent_id
        hashes = [_hash(t) for t in texts]
        reuse = await self._reusable(org_id, agent_id, {h: len(p) for h, p in zip(hashes, parts, strict=True)})
        done = 0
        for start in range(0, len(chunks), self.batch_size):
            idx = range(start, min(start + self.batch_size, len(chunks)))
            # Embed each distinct new text once per batch; the rest reuse stored vectors.
            first: dict[str, int] = {}
            for i in idx:
                first.setdefault(hashes[i], i)
            missing = [h for h in first if h not in reuse]
            if missing:
                batch_texts = [texts[first[h]] for h in missing]
                # Chunks and their sentences in one call: the embedder batches them together.
                batch_parts = [parts[first[h]] for h in missing]
                flat = [t for ps in batch_parts for t in ps]
                vectors = await self.embedder.embed_passages(batch_texts + flat, org_id=org_id, agent_id=agent_id)
                sparse = await asyncio.to_thread(self.sparse.encode_documents, batch_texts)
                offset = len(batch_texts)
                for h, d, s, ps in zip(missing, vectors[:offset], sparse, batch_parts, strict=True):
                    part_vectors = [v.tolist() for v in vectors[offset:offset + len(ps)]]
                    offset += len(ps)
                    reuse[h] = VectorPoint(id="", dense=d.tolist(), sparse=s, parts=part_vectors or None)
            if self.crosslingual is not None:
                # New chunks, and reused ones stored before cross-lingual vectors existed.
                lacking = [h for h in first if not reuse[h].xl]
                if lacking:
                    xl = await self.crosslingual.embed([texts[first[h]] for h in lacking])
                    for h, v in zip(lacking, xl, strict=True):
                        reuse[h].xl = v.tolist()
            points = [self._point(source, gen, chunks[i], hashes[i], reuse[hashes[i]]) for i in idx]
            await self.store.upsert(org_id, agent_id, points)
            done += len(points)
            await self.storage.knowledge.set_progress(org_id, source.id, done, len(chunks))
            if on_progress is not None:
                await on_progress(source.model_copy(update={"chunks_done": done, "chunks_total": len(chunks),
                                                            "status": SourceStatus.EMBEDDING}))

    @staticmethod
    def _point(source: KnowledgeSource, gen: int, chunk: Chunk, chunk_hash: str, vectors: VectorPoint) -> VectorPoint:
        payload: dict[str, Any] = {
            "source_id": source.id, "gen_key": gen_key(source.id, gen), "chunk_index": chunk.index,
            "chunk_hash": chunk_hash, "heading": chunk.heading, "text": chunk.text,
            "source_title": source.title, "meta": chunk.metadata, "parts": len(vectors.parts or []),
        }
        pid = str(uuid.uuid5(_POINT_NS, f"{source.org_id}:{source.agent_id}:{source.id}:{gen}:{chunk.index}"))
        return VectorPoint(id=pid, dense=vectors.dense, sparse=vectors.sparse, payload=payload,
                           parts=vectors.parts, xl=vectors.xl)
