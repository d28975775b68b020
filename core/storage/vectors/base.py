"""The vector store interface.

Tenancy is the store's job, not the caller's: every upsert stamps `org_id` and `agent_id` into
the payload, and every search and delete (including deletes by id) adds the filter on both.
Callers pass extra payload conditions only as `where` (exact-match key -> value or list of values).

A point is one chunk: a dense vector of the whole chunk, a sparse (BM25) vector, and optionally
`parts`, one dense vector per sentence of the chunk, stored on the same point as a multivector
(Qdrant's MaxSim), so `search_parts` scores a chunk by its best sentence and returns the chunk
itself; deletes and tenant filters cover the parts with no extra bookkeeping. A point may also
carry `xl`, the chunk's vector from the cross-lingual encoder (`core.ai.encoders.crosslingual`), searched
with `search_crosslingual`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class SparseVec:
    indices: list[int]
    values: list[float]


@dataclass
class VectorPoint:
    id: str  # a UUID string (Qdrant accepts UUIDs or unsigned ints)
    dense: list[float]
    sparse: SparseVec | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    parts: list[list[float]] | None = None  # sentence vectors of a multi-sentence chunk
    xl: list[float] | None = None  # the cross-lingual encoder's vector of the chunk


@dataclass
class ScoredPoint:
    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class CollectionInfo:
    model: str
    dim: int


@runtime_checkable
class VectorStore(Protocol):
    async def ensure_collection(self, model: str, dim: int) -> CollectionInfo: ...

    async def upsert(self, org_id: str, agent_id: str, points: list[VectorPoint]) -> None: ...

    async def search_dense(self, org_id: str, agent_id: str, vector: list[float], limit: int,
                           where: dict[str, Any] | None = None) -> list[ScoredPoint]: ...

    async def search_sparse(self, org_id: str, agent_id: str, vector: SparseVec, limit: int,
                            where: dict[str, Any] | None = None) -> list[ScoredPoint]: ...

    async def search_parts(self, org_id: str, agent_id: str, vector: list[float], limit: int,
                           where: dict[str, Any] | None = None) -> list[ScoredPoint]:
        """Points that have `parts`, scored by their best part's cosine with `vector`."""
        ...

    async def search_crosslingual(self, org_id: str, agent_id: str, vector: list[float], limit: int,
                                  where: dict[str, Any] | None = None) -> list[ScoredPoint]:
        """Points that have `xl`, by its cosine with `vector` (a cross-lingual encoder vector)."""
        ...

    async def delete(self, org_id: str, agent_id: str, *, ids: list[str] | None = None,
                     where: dict[str, Any] | None = None) -> None: ...

    async def count(self, org_id: str, agent_id: str, where: dict[str, Any] | None = None) -> int: ...

    async def fetch(self, org_id: str, agent_id: str, where: dict[str, Any],
                    limit: int = 10_000) -> list[VectorPoint]:
        """Points (with vectors and payload) matching `where` inside the tenant: lets ingestion
        reuse vectors of identical content instead of embedding it twice."""
        ...

    async def close(self) -> None: ...
