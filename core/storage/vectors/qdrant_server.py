"""Vector store on a Qdrant server or cluster through qdrant-client's async API.

The client is passed in (a server URL in production; qdrant-client's local mode on a folder in
tests). The embedding model and dimension that built the collection live in a one-point side
collection `<name>__meta`, which works the same on a server and in local mode. A collection made
before sentence or cross-lingual vectors gets the `parts` / `xl` named vector added when it is
opened.
"""

from __future__ import annotations

from typing import Any

from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from core.storage.vectors.base import CollectionInfo, ScoredPoint, SparseVec, VectorPoint
from core.storage.vectors.common import (
    DENSE,
    INDEXED_FIELDS,
    PARTS,
    SPARSE,
    XL,
    XL_DIM,
    check_model,
    stamped,
    tenant_pairs,
    where_items,
)

_PARTS_CONFIG = qm.MultiVectorConfig(comparator=qm.MultiVectorComparator.MAX_SIM)


def _condition(key: str, value: Any) -> qm.FieldCondition:
    if isinstance(value, (list, tuple, set)):
        return qm.FieldCondition(key=key, match=qm.MatchAny(any=list(value)))
    return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))


def _filter(org_id: str, agent_id: str, where: dict[str, Any] | None,
            ids: list[str] | None = None) -> qm.Filter:
    must: list[Any] = [_condition(k, v) for k, v in tenant_pairs(org_id, agent_id)]
    must += [_condition(k, v) for k, v in where_items(where)]
    if ids is not None:
        must.append(qm.HasIdCondition(has_id=list(ids)))
    return qm.Filter(must=must)


class QdrantServerVectorStore:
    """`VectorStore` over qdrant-client. Tenancy as in `base`: stamped and filtered here."""

    def __init__(self, client: AsyncQdrantClient, collection: str = "knowledge") -> None:
        self.client = client
        self.collection = collection
        self.meta_collection = f"{collection}__meta"

    async def ensure_collection(self, model: str, dim: int) -> CollectionInfo:
        if await self.client.collection_exists(self.meta_collection):
            points = await self.client.retrieve(self.meta_collection, ids=[1], with_payload=True)
            if points:
                meta = points[0].payload or {}
                info = check_model(CollectionInfo(meta["model"], int(meta["dim"])), model, dim)
                await self._ensure_named_vectors(dim)
                return info
        if await self.client.collection_exists(self.collection):
            await self._ensure_named_vectors(dim)
        else:
            await self.client.create_collection(
                self.collection,
                vectors_config={DENSE: qm.VectorParams(size=dim, distance=qm.Distance.COSINE),
                                PARTS: qm.VectorParams(size=dim, distance=qm.Distance.COSINE,
                                                       multivector_config=_PARTS_CONFIG),
                                XL: qm.VectorParams(size=XL_DIM, distance=qm.Distance.COSINE)},
                sparse_vectors_config={SPARSE: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
            )
            for name in INDEXED_FIELDS:
                await self.client.create_payload_index(
                    self.collection, name, field_schema=qm.PayloadSchemaType.KEYWORD)
        if not await self.client.collection_exists(self.meta_collection):
            await self.client.create_collection(
                self.meta_collection, vectors_config=qm.VectorParams(size=1, distance=qm.Distance.DOT))
        await self.client.upsert(self.meta_collection, points=[
            qm.PointStruct(id=1, vector=[1.0], payload={"model": model, "dim": dim})])
        return CollectionInfo(model, dim)

    async def _ensure_named_vectors(self, dim: int) -> None:
        """Add the sentence-vector multivector and the cross-lingual vector to a collection made
        before they existed."""
        if not await self.client.collection_exists(self.collection):
            return
        vectors = (await self.client.get_collection(self.collection)).config.params.vectors
        have = vectors if isinstance(vectors, dict) else {}
        added = {PARTS: qm.DenseVectorConfig(size=dim, distance=qm.Distance.COSINE, multivector_config=_PARTS_CONFIG),
                 XL: qm.DenseVectorConfig(size=XL_DIM, distance=qm.Distance.COSINE)}
        for name, config in added.items():
            if name not in have:
                await self.client.create_vector_name(self.collection, name, qm.DenseVectorNameConfig(dense=config))

    async def upsert(self, org_id: str, agent_id: str, points: list[VectorPoint]) -> None:
        tenant_pairs(org_id, agent_id)
        if not points:
            return
        structs = []
        for p in points:
            vector: dict[str, Any] = {DENSE: [float(x) for x in p.dense]}
            if p.sparse is not None and p.sparse.indices:
                vector[SPARSE] = qm.SparseVector(indices=list(p.sparse.indices), values=list(p.sparse.values))
            if p.parts:
                vector[PARTS] = [[float(x) for x in part] for part in p.parts]
            if p.xl:
                vector[XL] = [float(x) for x in p.xl]
            structs.append(qm.PointStruct(id=p.id, vector=vector, payload=stamped(p.payload, org_id, agent_id)))
        await self.client.upsert(self.collection, points=structs, wait=True)

    async def search_dense(self, org_id: str, agent_id: str, vector: list[float], limit: int,
                           where: dict[str, Any] | None = None) -> list[ScoredPoint]:
        return await self._query([float(x) for x in vector], DENSE, _filter(org_id, agent_id, where), limit)

    async def search_parts(self, org_id: str, agent_id: str, vector: list[float], limit: int,
                           where: dict[str, Any] | None = None) -> list[ScoredPoint]:
        # A one-vector multivector query: MaxSim is then the best part's cosine.
        return await self._query([[float(x) for x in vector]], PARTS, _filter(org_id, agent_id, where), limit)

    async def search_crosslingual(self, org_id: str, agent_id: str, vector: list[float], limit: int,
                                  where: dict[str, Any] | None = None) -> list[ScoredPoint]:
        return await self._query([float(x) for x in vector], XL, _filter(org_id, agent_id, where), limit)

    async def search_sparse(self, org_id: str, agent_id: str, vector: SparseVec, limit: int,
                            where: dict[str, Any] | None = None) -> list[ScoredPoint]:
        if not vector.indices:
            return []
        query = qm.SparseVector(indices=list(vector.indices), values=list(vector.values))
        return await self._query(query, SPARSE, _filter(org_id, agent_id, where), limit)

    async def _query(self, query: Any, using: str, flt: qm.Filter, limit: int) -> list[ScoredPoint]:
        response = await self.client.query_points(
            self.collection, query=query, using=using, query_filter=flt, limit=limit, with_payload=True)
        return [ScoredPoint(id=str(h.id), score=float(h.score), payload=dict(h.payload or {}))
                for h in response.points]

    async def delete(self, org_id: str, agent_id: str, *, ids: list[str] | None = None,
                     where: dict[str, Any] | None = None) -> None:
        if ids is not None and not ids:
            return
        selector = qm.FilterSelector(filter=_filter(org_id, agent_id, where, ids))
        await self.client.delete(self.collection, points_selector=selector, wait=True)

    async def count(self, org_id: str, agent_id: str, where: dict[str, Any] | None = None) -> int:
        result = await self.client.count(self.collection, count_filter=_filter(org_id, agent_id, where), exact=True)
        return result.count

    async def fetch(self, org_id: str, agent_id: str, where: dict[str, Any],
                    limit: int = 10_000) -> list[VectorPoint]:
        flt = _filter(org_id, agent_id, where)
        out: list[VectorPoint] = []
        offset = None
        while len(out) < limit:
            records, offset = await self.client.scroll(
                self.collection, scroll_filter=flt, limit=min(1000, limit - len(out)), offset=offset,
                with_payload=True, with_vectors=True)
            for r in records:
                vec = r.vector if isinstance(r.vector, dict) else {}
                sp = vec.get(SPARSE)
                parts = vec.get(PARTS)
                xl = vec.get(XL)
                out.append(VectorPoint(
                    id=str(r.id), dense=list(vec.get(DENSE) or []),
                    sparse=SparseVec(list(sp.indices), list(sp.values)) if sp is not None else None,
                    payload=dict(r.payload or {}), parts=[list(p) for p in parts] if parts else None,
                    xl=list(xl) if xl else None))
            if offset is None or not records:
                break
        return out

    async def optimize(self) -> bool:
        return False  # the server optimises on its own

    async def close(self) -> None:
        await self.client.close()
