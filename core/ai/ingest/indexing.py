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

Table rows (`core.ai.ingest.columns`) embed only their embedded cells, so a changed price list
re-embeds only the rows whose embedded text changed. New texts go to the encoder longest first,
in batches; progress is stored on the source after every batch with an ETA (`EtaClock`) that
the console and the CLI show.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from core.ai.encoders.crosslingual import CrossLingualEncoder
from core.ai.encoders.sparse import SparseEncoder
from core.ai.errors import ExtractionError, IngestInterrupted, SourceBusy
from core.ai.ingest.columns import apply_column_roles
from core.ai.ingest.extract import Section
from core.ai.ingest.extract.faq import extract_faq
from core.ai.ingest.extract.guard import GuardedExtractor
from core.ai.ingest.extract.html import extract_url
from core.ai.ingest.extract.text import parse_markdown
from core.ai.ingest.leases import INTERRUPTED, new_owner_id, owner_is_dead
from core.ai.ingest.sources import SourceIntake, gen_key
from core.ai.ingest.split import embedding_text, keyword_index_text, part_texts, split_sections
from core.ai.types import Chunk
from core.config import KnowledgeSettings
from core.errors import KommoAgentError, NotFound
from core.logging import get_logger
from core.models.knowledge import KnowledgeSource, SourceKind, SourceStatus
from core.storage.vectors.base import SparseVec, VectorPoint

log = get_logger(__name__)
_POINT_NS = uuid.UUID("6f1c9a52-0d7e-4b8a-9a43-2a1f3c5e7d90")
# Part of every source's content hash: sources indexed before sentence vectors (or cross-lingual
# vectors) existed are not "unchanged", so re-indexing them adds what is missing (chunk vectors
# are still reused by hash).
PARTS_LAYOUT = "parts:v1"
XL_LAYOUT = "xl:v1"
# Table rows embed only their embedded cells (`core.ai.ingest.columns`): a price list indexed
# before column roles is re-indexed (unchanged rows of other sources still reuse their vectors).
COLUMNS_LAYOUT = "columns:v1"
Progress = Callable[[KnowledgeSource], Awaitable[None]]
REUSE_PAGE = 500
# Encoder cost of a text in characters, plus this per encoder input (the prefix and special
# tokens, and the per-point work after it: keyword vector, cross-lingual vector, upsert).
COST_PER_INPUT = 40


def _cost(text: str, parts: list[str]) -> int:
    return len(text) + sum(len(p) for p in parts) + COST_PER_INPUT * (1 + len(parts))


class EtaClock:
    """Seconds left of an ingestion, from the encoder cost done so far and the time it took.
    The rate is measured, not assumed, so a busy machine gets a longer (and right) estimate."""

    def __init__(self, total_cost: int) -> None:
        self.total = total_cost
        self.done = 0
        self.started = time.monotonic()

    def add(self, cost: int) -> None:
        self.total += cost

    def advance(self, cost: int) -> None:
        self.done += cost

    def eta_s(self) -> float | None:
        """None until something was embedded; 0 when nothing is left."""
        if self.done >= self.total:
            return 0.0
        if not self.done:
            return None
        elapsed = time.monotonic() - self.started
        return round(elapsed / self.done * (self.total - self.done), 1)


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
            sections = extract_faq(source.options.get("pairs", []), source.title)
            if source.options.get("corrections"):  # a manager's corrections outrank the rest (answer/runtime)
                for section in sections:
                    section.metadata["correction"] = True
            return sections
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
        with the reason, and the previous generation stays live. The run holds the source's
        lease (`core.ai.ingest.leases`): a second run while the first is alive raises
        `SourceBusy`; an interrupted run (Ctrl-C, a cancel request) ends `failed: interrupted`
        and the next run picks up its vectors."""
        repo = self.storage.knowledge
        source = await repo.get(org_id, source_id)
        if source is None:
            raise NotFound("knowledge source not found", source_id=source_id)
        owner = new_owner_id()
        stale_s = 0.0 if source.lease_owner and owner_is_dead(source.lease_owner) else self.settings.ingest_stale_s
        claimed = await repo.claim(org_id, source_id, owner, stale_s)
        if claimed is None:
            raise SourceBusy("this source is being indexed right now; wait for it to finish", source_id=source_id)
        main = asyncio.current_task()
        why: dict[str, str] = {}
        beat = asyncio.create_task(self._keep_lease(org_id, source_id, owner, main, why))
        try:
            return await self._index_claimed(claimed, force, on_progress)
        except asyncio.CancelledError:
            await self._abandon(claimed, INTERRUPTED)
            if why and main is not None and main.uncancel() == 0:
                raise IngestInterrupted(INTERRUPTED, source_id=source_id) from None
            raise
        finally:
            beat.cancel()
            await repo.release(org_id, source_id, owner)

    async def _keep_lease(self, org_id: str, source_id: str, owner: str, main, why: dict[str, str]) -> None:
        """Renew the lease; stop the run when a cancel is requested or the lease was lost."""
        while True:
            await asyncio.sleep(self.settings.ingest_heartbeat_s)
            try:
                current = await self.storage.knowledge.heartbeat(org_id, source_id, owner)
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried; the sweep judges staleness
                log.warning("ingest_heartbeat_failed", source_id=source_id, error=str(exc)[:200])
                continue
            if current is None or current.cancel_requested:
                why["reason"] = "lost" if current is None else "cancel requested"
                if main is not None:
                    main.cancel()
                return

    async def _abandon(self, source: KnowledgeSource, reason: str) -> None:
        """End an interrupted run. Its partial generation stays: readers never see it (it is not
        live), the next run writes the same generation over it and reuses its vectors by chunk
        hash, so a re-run embeds only what is missing; removing the source removes it too."""
        await self.storage.knowledge.set_status(source.org_id, source.id, SourceStatus.FAILED, error=reason)

    async def _index_claimed(self, source: KnowledgeSource, force: bool,
                             on_progress: Progress | None) -> KnowledgeSource:
        repo = self.storage.knowledge
        org_id, source_id = source.org_id, source.id
        new_gen = source.generation + 1
        try:
            await repo.set_status(org_id, source_id, SourceStatus.PARSING, error=None)
            sections, columns = apply_column_roles(await self._sections(source), source.options.get("columns"))
            chunks = await asyncio.to_thread(split_sections, sections, self.settings.chunk_tokens,
                                             self.settings.chunk_overlap_tokens)
            del sections
            if not chunks:
                raise ExtractionError("no text was found to index")
            texts = [embedding_text(c, source.title) for c in chunks]
            keywords = [keyword_index_text(c, source.title) for c in chunks]
            parts = [part_texts(c, source.title) for c in chunks]
            layout = PARTS_LAYOUT + (f" {XL_LAYOUT}" if self.crosslingual else "")
            content = "\n\x00".join(texts)
            if columns:
                # Rows embed less than they show: a changed price or code changes the source
                # (its payload and keyword vectors) although no embedded text changed.
                layout += f" {COLUMNS_LAYOUT}"
                content += "\n\x01" + "\n\x00".join(keywords) + "\n\x01" + "\n\x00".join(c.text for c in chunks)
            content_hash = _hash(self.embedder.model_name + "\n" + layout + "\n" + content)
            del content
            live = source.generation > 0 and source.status == SourceStatus.READY
            if not force and live and content_hash == source.content_hash:
                await repo.set_status(org_id, source_id, SourceStatus.READY, chunks_done=len(chunks),
                                      chunks_total=len(chunks))
                return await repo.get(org_id, source_id)
            await repo.set_status(org_id, source_id, SourceStatus.EMBEDDING, chunks_done=0,
                                  chunks_total=len(chunks), error=None, eta_s=None,
                                  columns=[c.as_dict() for c in columns])
            await self._write_generation(source, new_gen, chunks, texts, keywords, parts, on_progress)
            # The flip: one write makes the new generation the one readers see.
            await repo.set_status(org_id, source_id, SourceStatus.READY, generation=new_gen,
                                  content_hash=content_hash, chunks_done=len(chunks),
                                  chunks_total=len(chunks), error=None, eta_s=0.0)
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

    async def _stored(self, org_id: str, agent_id: str, wanted: dict[str, int], *,
                      vectors: bool) -> dict[str, VectorPoint | None]:
        """Stored points by chunk hash, for hashes whose point has the expected number of parts
        (a point stored before sentence vectors has none, and is re-embedded). Without
        `vectors`, only which hashes are there (the points are dropped page by page, so a
        re-index never holds a whole source's vectors at once)."""
        hashes = sorted(wanted)
        found: dict[str, VectorPoint | None] = {}
        for i in range(0, len(hashes), REUSE_PAGE):
            for p in await self.store.fetch(org_id, agent_id, where={"chunk_hash": hashes[i:i + REUSE_PAGE]}):
                h = p.payload.get("chunk_hash", "")
                if p.dense and len(p.parts or []) == wanted.get(h, -1) and found.get(h) is None:
                    found[h] = p if vectors else None
        return found

    async def _write_generation(self, source: KnowledgeSource, gen: int, chunks: list[Chunk], texts: list[str],
                                keywords: list[str], parts: list[list[str]], on_progress: Progress | None) -> None:
        """Stored vectors are reused by the hash of the embedded text (so a price list whose
        prices changed re-embeds nothing, and one whose names changed re-embeds those rows);
        each distinct new text is embedded once, longest first, in batches of about
        `batch_size` encoder inputs. Keyword vectors are recomputed for every chunk (cheap:
        keyword-only cells may change while the embedded text does not)."""
        org_id, agent_id = source.org_id, source.agent_id
        hashes = [_hash(t) for t in texts]
        groups: dict[str, list[int]] = {}
        for i, h in enumerate(hashes):
            groups.setdefault(h, []).append(i)
        stored = await self._stored(org_id, agent_id, {h: len(parts[g[0]]) for h, g in groups.items()}, vectors=False)
        reused = [h for h in groups if h in stored]
        fresh = [h for h in groups if h not in stored]
        # Longest first: the encoder's batch runs one text per thread, so texts of similar
        # length keep both threads busy; and the ETA learns the rate on the costly ones.
        fresh.sort(key=lambda h: -_cost(texts[groups[h][0]], parts[groups[h][0]]))
        clock = EtaClock(sum(_cost(texts[groups[h][0]], parts[groups[h][0]]) for h in fresh))
        done = 0
        for start in range(0, len(reused), REUSE_PAGE):
            page = reused[start:start + REUSE_PAGE]
            vectors = await self._stored(org_id, agent_id, {h: len(parts[groups[h][0]]) for h in page}, vectors=True)
            if len(vectors) < len(page):  # deleted meanwhile: embed those after all
                fresh += [h for h in page if vectors.get(h) is None]
                clock.add(sum(_cost(texts[groups[h][0]], parts[groups[h][0]]) for h in page if vectors.get(h) is None))
            found = {h: VectorPoint(id="", dense=p.dense, parts=p.parts, xl=p.xl) for h, p in vectors.items() if p}
            done += await self._write_batch(source, gen, chunks, texts, keywords, groups, found)
            await self._progress(source, done, len(chunks), clock, on_progress)
        batch: list[str] = []
        inputs = 0
        clock.started = time.monotonic()  # the rate is the encoder's: reused rows cost next to nothing
        for n, h in enumerate(fresh):
            batch.append(h)
            inputs += 1 + len(parts[groups[h][0]])
            if inputs < self.batch_size and n + 1 < len(fresh):
                continue
            vectors = await self._embed(org_id, agent_id, [texts[groups[b][0]] for b in batch],
                                        [parts[groups[b][0]] for b in batch])
            done += await self._write_batch(source, gen, chunks, texts, keywords, groups, dict(zip(batch, vectors,
                                                                                                      strict=True)))
            clock.advance(sum(_cost(texts[groups[b][0]], parts[groups[b][0]]) for b in batch))
            await self._progress(source, done, len(chunks), clock, on_progress)
            batch, inputs = [], 0

    async def _embed(self, org_id: str, agent_id: str, texts: list[str], parts: list[list[str]]) -> list[VectorPoint]:
        # Chunks and their sentences in one call: the embedder batches them together.
        flat = [t for ps in parts for t in ps]
        vectors = await self.embedder.embed_passages(texts + flat, org_id=org_id, agent_id=agent_id)
        out = []
        offset = len(texts)
        for d, ps in zip(vectors[:len(texts)], parts, strict=True):
            part_vectors = [v.tolist() for v in vectors[offset:offset + len(ps)]]
            offset += len(ps)
            out.append(VectorPoint(id="", dense=d.tolist(), parts=part_vectors or None))
        return out

    async def _write_batch(self, source: KnowledgeSource, gen: int, chunks: list[Chunk], texts: list[str],
                           keywords: list[str], groups: dict[str, list[int]], vectors: dict[str, VectorPoint]) -> int:
        """Upsert every chunk of the given text hashes; returns how many points were written."""
        if self.crosslingual is not None:
            # New chunks, and reused ones stored before cross-lingual vectors existed.
            lacking = [h for h, v in vectors.items() if not v.xl]
            if lacking:
                xl = await self.crosslingual.embed([texts[groups[h][0]] for h in lacking])
                for h, v in zip(lacking, xl, strict=True):
                    vectors[h].xl = v.tolist()
        pairs = [(h, i) for h in vectors for i in groups[h]]
        sparse = await asyncio.to_thread(self.sparse.encode_documents, [keywords[i] for _h, i in pairs])
        points = [self._point(source, gen, chunks[i], h, vectors[h], s) for (h, i), s in zip(pairs, sparse, strict=True)]
        await self.store.upsert(source.org_id, source.agent_id, points)
        return len(points)

    async def _progress(self, source: KnowledgeSource, done: int, total: int, clock: EtaClock,
                        on_progress: Progress | None) -> None:
        eta = clock.eta_s()
        await self.storage.knowledge.set_progress(source.org_id, source.id, done, total, eta_s=eta)
        if on_progress is not None:
            await on_progress(source.model_copy(update={"chunks_done": done, "chunks_total": total, "eta_s": eta,
                                                        "status": SourceStatus.EMBEDDING}))

    @staticmethod
    def _point(source: KnowledgeSource, gen: int, chunk: Chunk, chunk_hash: str, vectors: VectorPoint,
               sparse: SparseVec) -> VectorPoint:
        payload: dict[str, Any] = {
            "source_id": source.id, "gen_key": gen_key(source.id, gen), "chunk_index": chunk.index,
            "chunk_hash": chunk_hash, "heading": chunk.heading, "text": chunk.text,
            "source_title": source.title, "parts": len(vectors.parts or []),
            # Keys starting with "_" are the texts a row hands the encoders, not the chunk's metadata.
            "meta": {k: v for k, v in chunk.metadata.items() if not k.startswith("_")},
        }
        pid = str(uuid.uuid5(_POINT_NS, f"{source.org_id}:{source.agent_id}:{source.id}:{gen}:{chunk.index}"))
        return VectorPoint(id=pid, dense=vectors.dense, sparse=sparse, payload=payload,
                           parts=vectors.parts, xl=vectors.xl)
