"""Pieces both vector store implementations share: names, payload stamping, tenancy checks."""

from __future__ import annotations

from typing import Any

from core.errors import InvalidInput
from core.storage.errors import EmbeddingModelMismatch
from core.storage.vectors.base import CollectionInfo

DENSE = "dense"
SPARSE = "bm25"
# Sentence vectors of a chunk: a multivector compared by MaxSim (the best sentence's cosine).
# Collections made before it existed get it added on open (`ensure_collection`).
PARTS = "parts"
# The chunk's vector from the cross-lingual encoder (`core.ai.encoders.crosslingual`), whose size is fixed
# by that model, not by the embedding model. Added on open to collections made before it existed.
XL = "xl"
XL_DIM = 512
# Payload fields with a keyword index: the tenant pair (filtered on every call), the source
# (deletes and re-index), and the source generation key (readers see live generations only).
INDEXED_FIELDS = ("org_id", "agent_id", "source_id", "gen_key", "chunk_hash")


def tenant_pairs(org_id: str, agent_id: str) -> list[tuple[str, str]]:
    """The (key, value) conditions every operation carries; empty ids are refused outright,
    so a caller bug can never turn into an unfiltered cross-tenant query."""
    if not org_id or not isinstance(org_id, str):
        raise InvalidInput("org_id is required for every vector store call")
    if not agent_id or not isinstance(agent_id, str):
        raise InvalidInput("agent_id is required for every vector store call")
    return [("org_id", org_id), ("agent_id", agent_id)]


def stamped(payload: dict[str, Any], org_id: str, agent_id: str) -> dict[str, Any]:
    # The store's values win over whatever the caller put in the payload.
    return {**payload, "org_id": org_id, "agent_id": agent_id}


def where_items(where: dict[str, Any] | None) -> list[tuple[str, Any]]:
    items = list((where or {}).items())
    for key, _ in items:
        if key in ("org_id", "agent_id"):
            raise InvalidInput("tenant keys are set by the store, not by `where`")
    return items


def check_model(existing: CollectionInfo, model: str, dim: int) -> CollectionInfo:
    if existing.model != model or existing.dim != dim:
        raise EmbeddingModelMismatch(
            f"the knowledge collection was built with {existing.model} ({existing.dim}-d) but the "
            f"configured embedding model is {model} ({dim}-d): re-index required "
            "(run `kommo-agent knowledge reindex` for every agent, or point the store at a new folder)"
        )
    return existing
