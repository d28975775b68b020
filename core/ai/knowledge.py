"""Composition of the knowledge base: vector store, embedder, retriever and ingestion.

`build_knowledge(settings, storage, ...)` is called once per process by the composition root;
tests and benchmarks pass their own store/embedder instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.ai.encoders.crosslingual import CrossLingualEncoder
from core.ai.encoders.dense import Embedder, build_embedder
from core.ai.encoders.sparse import SparseEncoder
from core.ai.ingest.indexing import IngestionService
from core.ai.retrieval.hybrid import DEFAULT_MIN_DENSE_SCORE, HybridRetriever, RetrievalConfig
from core.ai.retrieval.translation import QueryTranslator
from core.config import Settings
from core.ports import TaskQueue
from core.storage import Storage
from core.storage.vectors.base import VectorStore
from core.storage.vectors.factory import build_vector_store
from core.usage.metering import UsageMeter


@dataclass
class KnowledgeServices:
    vector_store: VectorStore
    embedder: Embedder
    retriever: HybridRetriever
    ingestion: IngestionService

    async def close(self) -> None:
        await self.vector_store.close()


async def build_knowledge(settings: Settings, storage: Storage, *, meter: UsageMeter | None = None,
                          queue: TaskQueue | None = None, vector_store: VectorStore | None = None,
                          embedder: Embedder | None = None, translator: QueryTranslator | None = None,
                          owner_role: str = "a kommo-agent process") -> KnowledgeServices:
    """`queue` None: callers run `ingestion.index_source` themselves, as the CLI does. Opens
    the collection and raises `EmbeddingModelMismatch` when another embedding model built it, or
    `StoreBusy` when another process owns the embedded store (`owner_role` names this one)."""
    store = vector_store or build_vector_store(settings, owner_role=owner_role)
    emb = embedder or build_embedder(settings, meter)
    if not emb.dim and hasattr(emb, "probe"):
        await emb.probe()  # an OpenAI-compatible model of unknown size: ask once
    await store.ensure_collection(emb.model_name, emb.dim)
    sparse = SparseEncoder()
    crosslingual = (CrossLingualEncoder(word_cache_size=settings.knowledge.word_cache_size)
                    if settings.knowledge.cross_lingual else None)
    threshold = settings.knowledge.relevance_threshold or DEFAULT_MIN_DENSE_SCORE
    retriever = HybridRetriever(storage, store, emb, sparse,
                                RetrievalConfig(min_dense_score=threshold), translator=translator,
                                crosslingual=crosslingual)
    ingestion = IngestionService(storage, store, emb, settings.knowledge, queue, sparse=sparse,
                                 batch_size=max(settings.embeddings.batch_size, 1) * 2, crosslingual=crosslingual)
    return KnowledgeServices(store, emb, retriever, ingestion)
