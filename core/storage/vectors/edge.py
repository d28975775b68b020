"""Embedded vector store: Qdrant Edge (an in-process Qdrant shard on a data folder).

The shard API is synchronous: searches (about a millisecond) run inline, everything else in a
worker thread; writes (upserts, deletes, optimisation) are serialised with one lock because a
shard has a single writer. A small
`collection.json` beside the shard records which embedding model and dimension built it, and
which named vectors the shard has (a shard made before sentence vectors or cross-lingual vectors
gets `parts` / `xl` added).
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from core.storage import owner
from core.storage.owner import OwnerLock
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

_PARTS_CONFIG = qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim)


def _condition(key: str, value: Any) -> qe.FieldCondition:
    if isinstance(value, (list, tuple, set)):
        return qe.FieldCondition(key=key, match=qe.MatchAny(list(value)))
    return qe.FieldCondition(key=key, match=qe.MatchValue(value))


def _filter(org_id: str, agent_id: str, where: dict[str, Any] | None,
            ids: list[str] | None = None) -> qe.Filter:
    must: list[Any] = [_condition(k, v) for k, v in tenant_pairs(org_id, agent_id)]
    must += [_condition(k, v) for k, v in where_items(where)]
    if ids is not None:
        must.append(qe.HasIdCondition(set(ids)))
    return qe.Filter(must=must)


def _to_point(point_id: Any, vector: Any, payload: Any) -> VectorPoint:
    vector = vector or {}
    sparse = vector.get(SPARSE)
    parts = vector.get(PARTS)
    xl = vector.get(XL)
    return VectorPoint(
        id=str(point_id), dense=list(vector.get(DENSE) or []),
        sparse=SparseVec(list(sparse.indices), list(sparse.values)) if sparse is not None else None,
        payload=dict(payload or {}), parts=[list(p) for p in parts] if parts else None,
        xl=list(xl) if xl else None)


class EdgeVectorStore:
    """`VectorStore` over Qdrant Edge. Only one process may open the folder at a time."""

    def __init__(self, path: Path, *, optimize_after: int = 2000, payload_in_ram: bool = True,
                 owner_role: str = "a kommo-agent process") -> None:
        self.path = Path(path)
        self.owner_role = owner_role
        self._owner: OwnerLock | None = None
        self.optimize_after = optimize_after  # unindexed points tolerated before HNSW rebuild
        self.payload_in_ram = payload_in_ram
        self._shard: qe.EdgeShard | None = None
        self._info: CollectionInfo | None = None
        self._write_lock = threading.Lock()
        self._pending = 0

    def _placement(self) -> dict[str, Any]:
        """Where the shard keeps its payload and point ids. Every filtered search reads the
        tenant fields of each point it visits: from the default on-disk payload storage, a
        freshly opened 100k-point shard needed ~800 queries before its p50 settled (1.3 ms
        down to 0.4 ms); with the payload cached in RAM and the id tracker pinned, ~200 queries
        (to 0.3 ms; bench/retrieval.py). Fixed when a shard is created: a shard made by an
        earlier version keeps its placement until it is rebuilt."""
        if not self.payload_in_ram:
            return {}
        return {"payload_memory": qe.Memory.Cached, "id_tracker_memory": qe.Memory.Pinned}

    @property
    def _meta_file(self) -> Path:
        return self.path / "collection.json"

    async def ensure_collection(self, model: str, dim: int) -> CollectionInfo:
        return await asyncio.to_thread(self._ensure, model, dim)

    def _ensure(self, model: str, dim: int) -> CollectionInfo:
        with self._write_lock:
            if self._owner is None:
                # Before the shard: a second opener would get Qdrant's raw WAL error instead.
                self._owner = owner.acquire(self.path, self.owner_role)
            if self._meta_file.exists():
                meta = json.loads(self._meta_file.read_text())
                info = check_model(CollectionInfo(meta["model"], int(meta["dim"])), model, dim)
                if self._shard is None:
                    self._shard = qe.EdgeShard.load(str(self.path / "shard"))
                # Made before sentence or cross-lingual vectors: add the named vector; existing
                # points simply have none until their source is re-indexed.
                added = {PARTS: (dim, _PARTS_CONFIG), XL: (XL_DIM, None)}
                missing = [name for name in added if name not in meta.get("vectors", [])]
                for name in missing:
                    size, multivector = added[name]
                    self._shard.update(qe.UpdateOperation.create_dense_vector(
                        name, size, qe.Distance.Cosine, multivector))
                if missing:
                    self._shard.flush()
                    self._write_meta(model, dim)
            else:
                self.path.mkdir(parents=True, exist_ok=True)
                config = qe.EdgeConfig(
                    vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
                             PARTS: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine,
                                                        multivector_config=_PARTS_CONFIG),
                             XL: qe.EdgeVectorParams(size=XL_DIM, distance=qe.Distance.Cosine)},
                    sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
                    **self._placement(),
                )
                self._shard = qe.EdgeShard.create(str(self.path / "shard"), config)
                for name in INDEXED_FIELDS:
                    self._shard.update(qe.UpdateOperation.create_field_index(
                        name, qe.PayloadSchemaType.Keyword))
                self._shard.flush()
                # Written last: a crash before this leaves no meta, and the next start recreates.
                self._write_meta(model, dim)
                info = CollectionInfo(model, dim)
            self._info = info
            return info

    def _write_meta(self, model: str, dim: int) -> None:
        self._meta_file.write_text(json.dumps({"model": model, "dim": dim, "vectors": [DENSE, SPARSE, PARTS, XL]}))

    def _require(self) -> qe.EdgeShard:
        if self._shard is None:
            raise RuntimeError("call ensure_collection() before using the vector store")
        return self._shard

    async def upsert(self, org_id: str, agent_id: str, points: list[VectorPoint]) -> None:
        tenant_pairs(org_id, agent_id)
        if not points:
            return
        edge_points = []
        for p in points:
            vector: dict[str, Any] = {DENSE: [float(x) for x in p.dense]}
            if p.sparse is not None and p.sparse.indices:
                vector[SPARSE] = qe.SparseVector(list(p.sparse.indices), list(p.sparse.values))
            if p.parts:
                vector[PARTS] = [[float(x) for x in part] for part in p.parts]
            if p.xl:
                vector[XL] = [float(x) for x in p.xl]
            edge_points.append(qe.Point(id=p.id, vector=vector, payload=stamped(p.payload, org_id, agent_id)))
        await asyncio.to_thread(self._write, qe.UpdateOperation.upsert_points(edge_points), len(points))

    def _write(self, op: qe.UpdateOperation, added: int = 0) -> None:
        with self._write_lock:
            shard = self._require()
            shard.update(op)
            self._pending += added
            if self.optimize_after and self._pending >= self.optimize_after:
                shard.optimize()  # large batches: build HNSW so searches stop scanning plainly
                self._pending = 0

    async def optimize(self) -> bool:
        def _run() -> bool:
            with self._write_lock:
                self._pending = 0
                return self._require().optimize()
        return await asyncio.to_thread(_run)

    async def search_dense(self, org_id: str, agent_id: str, vector: list[float], limit: int,
                           where: dict[str, Any] | None = None) -> list[ScoredPoint]:
        query = qe.Query.Nearest([float(x) for x in vector], using=DENSE)
        return await self._query(query, _filter(org_id, agent_id, where), limit)

    async def search_parts(self, org_id: str, agent_id: str, vector: list[float], limit: int,
                           where: dict[str, Any] | None = None) -> list[ScoredPoint]:
        # A one-vector multivector query: MaxSim is then the best part's cosine.
        query = qe.Query.Nearest([[float(x) for x in vector]], using=PARTS)
        return await self._query(query, _filter(org_id, agent_id, where), limit)

    async def search_crosslingual(self, org_id: str, agent_id: str, vector: list[float], limit: int,
                                  where: dict[str, Any] | None = None) -> list[ScoredPoint]:
        query = qe.Query.Nearest([float(x) for x in vector], using=XL)
        return await self._query(query, _filter(org_id, agent_id, where), limit)

    async def search_sparse(self, org_id: str, agent_id: str, vector: SparseVec, limit: int,
                            where: dict[str, Any] | None = None) -> list[ScoredPoint]:
        if not vector.indices:
            return []
        query = qe.Query.Nearest(qe.SparseVector(list(vector.indices), list(vector.values)), using=SPARSE)
        return await self._query(query, _filter(org_id, agent_id, where), limit)

    async def _query(self, query: Any, flt: qe.Filter, limit: int) -> list[ScoredPoint]:
        request = qe.QueryRequest(limit=limit, query=query, filter=flt, with_payload=True)
        # Inline, not in a worker thread: a search is about a millisecond on an indexed shard (at
        # most `optimize_after` points are ever unindexed), and the hop to a thread and back cost
        # as much again (bench/retrieval.py: p50 2.1 ms through a thread vs 0.9 ms raw).
        hits = self._require().query(request)
        return [ScoredPoint(id=str(h.id), score=float(h.score), payload=dict(h.payload or {})) for h in hits]

    async def delete(self, org_id: str, agent_id: str, *, ids: list[str] | None = None,
                     where: dict[str, Any] | None = None) -> None:
        if ids is not None and not ids:
            return
        flt = _filter(org_id, agent_id, where, ids)
        await asyncio.to_thread(self._write, qe.UpdateOperation.delete_points_by_filter(flt))

    async def count(self, org_id: str, agent_id: str, where: dict[str, Any] | None = None) -> int:
        request = qe.CountRequest(exact=True, filter=_filter(org_id, agent_id, where))
        return await asyncio.to_thread(lambda: self._require().count(request))

    async def fetch(self, org_id: str, agent_id: str, where: dict[str, Any],
                    limit: int = 10_000) -> list[VectorPoint]:
        flt = _filter(org_id, agent_id, where)

        def _scroll() -> list[VectorPoint]:
            out: list[VectorPoint] = []
            offset = None
            while len(out) < limit:
                records, offset = self._require().scroll(qe.ScrollRequest(
                    offset=offset, limit=min(1000, limit - len(out)), filter=flt,
                    with_payload=True, with_vector=True))
                out += [_to_point(r.id, r.vector, r.payload) for r in records]
                if offset is None or not records:
                    break
            return out
        return await asyncio.to_thread(_scroll)

    async def close(self) -> None:
        def _close() -> None:
            with self._write_lock:
                if self._shard is not None:
                    self._shard.flush()
                    self._shard.close()
                    self._shard = None
                if self._owner is not None:
                    self._owner.release()
                    self._owner = None
        await asyncio.to_thread(_close)
