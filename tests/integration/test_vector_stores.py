"""Both vector store implementations: tenancy on every call, model bookkeeping, deletes."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from qdrant_client import AsyncQdrantClient

from core.errors import InvalidInput
from core.storage.vectors.base import EmbeddingModelMismatch, SparseVec, VectorPoint, VectorStore
from core.storage.vectors.edge import EdgeVectorStore
from core.storage.vectors.qdrant_server import QdrantServerVectorStore

DIM = 8


def _make(kind: str, folder) -> VectorStore:
    if kind == "edge":
        return EdgeVectorStore(folder / "vectors")
    return QdrantServerVectorStore(AsyncQdrantClient(path=str(folder / "qdrant-local")), "knowledge")


@pytest.fixture(params=["edge", "server"])
async def store(request, tmp_path):
    s = _make(request.param, tmp_path)
    await s.ensure_collection("test-model", DIM)
    yield s
    await s.close()


def _vec(seed: int) -> list[float]:
    v = np.random.default_rng(seed).normal(size=DIM)
    return (v / np.linalg.norm(v)).tolist()


def _point(seed: int, **payload) -> VectorPoint:
    return VectorPoint(id=str(uuid.uuid4()), dense=_vec(seed),
                       sparse=SparseVec([seed % 7, 100 + seed], [1.0, 0.5]), payload=payload)


async def test_search_never_crosses_tenants(store):
    a = [_point(i, source_id="s1", text=f"a{i}") for i in range(5)]
    b = [_point(i, source_id="s1", text=f"b{i}", org_id="orgA") for i in range(5)]  # forged org
    await store.upsert("orgA", "ag1", a)
    await store.upsert("orgB", "ag1", b)
    await store.upsert("orgA", "ag2", [_point(99, source_id="s9")])
    hits = await store.search_dense("orgA", "ag1", _vec(0), limit=20)
    assert {h.payload["text"] for h in hits} == {f"a{i}" for i in range(5)}
    assert all(h.payload["org_id"] == "orgA" and h.payload["agent_id"] == "ag1" for h in hits)
    hits_b = await store.search_dense("orgB", "ag1", _vec(0), limit=20)
    assert {h.payload["text"] for h in hits_b} == {f"b{i}" for i in range(5)}  # stamped, not forged
    sparse = await store.search_sparse("orgA", "ag1", SparseVec([0, 1, 2, 3, 4, 5, 6], [1.0] * 7), limit=20)
    assert sparse and all(h.payload["org_id"] == "orgA" for h in sparse)
    assert await store.count("orgA", "ag1") == 5
    assert await store.count("orgA", "ag2") == 1
    assert await store.count("orgB", "ag1") == 5
    with pytest.raises(InvalidInput):
        await store.search_dense("", "ag1", _vec(0), limit=5)
    with pytest.raises(InvalidInput):
        await store.count("orgA", "ag1", where={"org_id": "orgB"})


async def test_delete_by_id_and_filter_stays_in_tenant(store):
    a = [_point(i, source_id="s1") for i in range(3)]
    b = [_point(i, source_id="s1") for i in range(3)]
    await store.upsert("orgA", "ag1", a)
    await store.upsert("orgB", "ag1", b)
    # orgB guesses orgA's point ids: nothing of orgA's may go.
    await store.delete("orgB", "ag1", ids=[p.id for p in a])
    assert await store.count("orgA", "ag1") == 3
    await store.delete("orgB", "ag1", where={"source_id": "s1"})
    assert await store.count("orgA", "ag1") == 3 and await store.count("orgB", "ag1") == 0
    await store.delete("orgA", "ag1", ids=[a[0].id])
    assert await store.count("orgA", "ag1") == 2
    await store.delete("orgA", "ag1", ids=[])  # no-op, never "delete everything"
    assert await store.count("orgA", "ag1") == 2


async def test_where_list_matches_any(store):
    await store.upsert("o", "a", [_point(1, source_id="s1", gen_key="s1:1"),
                                  _point(2, source_id="s2", gen_key="s2:1"),
                                  _point(3, source_id="s2", gen_key="s2:2")])
    hits = await store.search_dense("o", "a", _vec(1), 10, where={"gen_key": ["s1:1", "s2:2"]})
    assert sorted(h.payload["gen_key"] for h in hits) == ["s1:1", "s2:2"]


@pytest.mark.parametrize("kind", ["edge", "server"])
async def test_model_mismatch_requires_reindex(kind, tmp_path):
    s = _make(kind, tmp_path)
    await s.ensure_collection("model-a", DIM)
    await s.upsert("o", "a", [_point(1)])
    await s.close()
    s = _make(kind, tmp_path)  # reopen: the data and its model record survive
    assert (await s.ensure_collection("model-a", DIM)).dim == DIM
    assert await s.count("o", "a") == 1
    with pytest.raises(EmbeddingModelMismatch, match="re-index required"):
        await s.ensure_collection("model-b", DIM)
    with pytest.raises(EmbeddingModelMismatch, match="re-index required"):
        await s.ensure_collection("model-a", DIM * 2)
    await s.close()


async def test_edge_optimize_keeps_results(tmp_path):
    s = EdgeVectorStore(tmp_path / "v", optimize_after=50)
    await s.ensure_collection("m", DIM)
    await s.upsert("o", "a", [_point(i) for i in range(120)])  # crosses the threshold
    await s.optimize()
    hits = await s.search_dense("o", "a", _vec(5), limit=1)
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    await s.close()


async def test_fetch_returns_vectors_inside_tenant(store):
    p = _point(3, chunk_hash="h1")
    await store.upsert("o", "a", [p])
    await store.upsert("o2", "a", [_point(3, chunk_hash="h1")])
    got = await store.fetch("o", "a", where={"chunk_hash": ["h1", "h2"]})
    assert [g.id for g in got] == [p.id]
    assert got[0].dense == pytest.approx(p.dense, abs=1e-5)
    assert got[0].sparse.indices == p.sparse.indices
