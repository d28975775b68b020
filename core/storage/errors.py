"""Errors of the storage layer."""

from __future__ import annotations

from core.errors import KommoAgentError


class EmbeddingModelMismatch(KommoAgentError):
    """The collection was built by another embedding model/dimension: re-index required."""

    code = "embedding_model_mismatch"


class StoreBusy(KommoAgentError):
    """An embedded single-process store is held by another process (see `core.storage.owner`)."""

    code = "store_busy"
