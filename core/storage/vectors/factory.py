"""Pick the vector store from settings: a Qdrant server when QDRANT_URL is set, else Qdrant Edge."""

from __future__ import annotations

from core.config import Settings
from core.storage.vectors.base import VectorStore


def build_vector_store(settings: Settings, *, owner_role: str = "a kommo-agent process") -> VectorStore:
    if settings.qdrant.url:
        from qdrant_client import AsyncQdrantClient  # noqa: PLC0415 - only with a Qdrant server

        from core.storage.vectors.qdrant_server import QdrantServerVectorStore  # noqa: PLC0415 - as above

        key = settings.qdrant.api_key.get_secret_value() if settings.qdrant.api_key else None
        client = AsyncQdrantClient(url=settings.qdrant.url, api_key=key)
        return QdrantServerVectorStore(client, settings.qdrant.collection)
    from core.storage.vectors.edge import EdgeVectorStore  # noqa: PLC0415 - only in the embedded default

    return EdgeVectorStore(settings.vectors_dir / settings.qdrant.collection,
                           payload_in_ram=settings.qdrant.edge_payload_in_ram, owner_role=owner_role)
