"""Both vector store implementations: tenancy on every call, model bookkeeping, deletes."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import qdrant_edge as qe
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from core.config import Settings
from core.errors import InvalidInput
from core.storage.errors import EmbeddingModelMismatch
from core.storage.vectors.base import SparseVec, VectorPoint, VectorStore
from core.storage.vectors.common import DENSE, PARTS, SPARSE, XL, XL_DIM
from core.storage.vectors.edge import EdgeVectorStore
from core.storage.vectors.factory import build_vector_store
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
    points = [_point(i) for i in range(120)]
    for p in points[::2]:
        p.parts = [_vec(1000 + int(p.dense[0] * 1e6) % 997), p.dense]
    await s.upsert("o", "a", points)  # crosses the threshold
    await s.optimize()
    hits = await s.search_dense("o", "a", _vec(5), limit=1)
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    parts = await s.search_parts("o", "a", points[10].dense, limit=1)  # indexed multivectors too
    assert parts[0].id == points[10].id and parts[0].score == pytest.approx(1.0, abs=1e-4)
    await s.close()


async def test_fetch_returns_vectors_inside_tenant(store):
    p = _point(3, chunk_hash="h1")
    await store.upsert("o", "a", [p])
    await store.upsert("o2", "a", [_point(3, chunk_hash="h1")])
    got = await store.fetch("o", "a", where={"chunk_hash": ["h1", "h2"]})
    assert [g.id for g in got] == [p.id]
    assert got[0].dense == pytest.approx(p.dense, abs=1e-5)
    assert got[0].sparse.indices == p.sparse.indices


def _parts(*seeds: int) -> list[list[float]]:
    return [_vec(s) for s in seeds]


async def test_parts_score_a_chunk_by_its_best_part_inside_tenant(store):
    whole = _point(1, text="two sentences")
    whole.parts = _parts(10, 11)
    single = _point(2, text="one sentence")  # no parts: never returned by search_parts
    forged = _point(3, text="other tenant")
    forged.parts = _parts(11)
    await store.upsert("o", "a", [whole, single])
    await store.upsert("o2", "a", [forged])
    hits = await store.search_parts("o", "a", _vec(11), 10)
    assert [h.payload["text"] for h in hits] == ["two sentences"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)  # the second part matches exactly
    assert hits[0].id == whole.id and hits[0].payload["org_id"] == "o"
    # The whole-chunk vector is still searched on its own.
    dense = await store.search_dense("o", "a", _vec(2), 1)
    assert dense[0].payload["text"] == "one sentence"
    got = await store.fetch("o", "a", where={"text": "two sentences"})
    assert len(got[0].parts) == 2 and got[0].parts[1] == pytest.approx(whole.parts[1], abs=1e-5)
    await store.delete("o", "a", ids=[whole.id])
    assert await store.search_parts("o", "a", _vec(11), 10) == []
    assert len(await store.search_parts("o2", "a", _vec(11), 10)) == 1
    with pytest.raises(InvalidInput):
        await store.search_parts("", "a", _vec(11), 10)


def _xl(seed: int) -> list[float]:

    v = np.random.default_rng(1000 + seed).normal(size=XL_DIM)
    return (v / np.linalg.norm(v)).tolist()


async def test_crosslingual_vectors_are_searched_inside_tenant_and_fetched(store):
    with_xl = _point(1, text="has xl")
    with_xl.xl = _xl(1)
    other = _point(2, text="has another xl")
    other.xl = _xl(2)
    plain = _point(3, text="no xl")  # indexed before cross-lingual vectors: never returned
    forged = _point(4, text="other tenant")
    forged.xl = _xl(1)
    await store.upsert("o", "a", [with_xl, other, plain])
    await store.upsert("o2", "a", [forged])
    hits = await store.search_crosslingual("o", "a", _xl(1), 10)
    assert [h.payload["text"] for h in hits] == ["has xl", "has another xl"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-4) and hits[0].payload["org_id"] == "o"
    assert [h.payload["text"] for h in await store.search_crosslingual("o", "a", _xl(1), 10,
                                                                        where={"text": "has another xl"})] == [
        "has another xl"]
    got = {p.payload["text"]: p for p in await store.fetch("o", "a", where={"text": ["has xl", "no xl"]})}
    assert got["has xl"].xl == pytest.approx(with_xl.xl, abs=1e-5) and got["no xl"].xl is None
    await store.delete("o", "a", ids=[with_xl.id])
    assert [h.payload["text"] for h in await store.search_crosslingual("o", "a", _xl(1), 10)] == ["has another xl"]
    with pytest.raises(InvalidInput):
        await store.search_crosslingual("", "a", _xl(1), 10)


async def test_edge_old_shard_gets_parts_added_on_open(tmp_path):



    folder = tmp_path / "v"
    folder.mkdir()
    # A shard as the previous version made it: no `parts` vector, no vector list in the meta.
    shard = qe.EdgeShard.create(str(folder / "shard"), qe.EdgeConfig(
        vectors={DENSE: qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine)},
        sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)}))
    shard.flush()
    shard.close()
    (folder / "collection.json").write_text(json.dumps({"model": "m", "dim": DIM}))
    s = EdgeVectorStore(folder)
    await s.ensure_collection("m", DIM)
    p = _point(4, text="new")
    p.parts, p.xl = _parts(4, 5), _xl(4)
    await s.upsert("o", "a", [p, _point(6, text="old style")])
    assert [h.payload["text"] for h in await s.search_parts("o", "a", _vec(5), 5)] == ["new"]
    assert [h.payload["text"] for h in await s.search_crosslingual("o", "a", _xl(4), 5)] == ["new"]
    await s.close()
    s = EdgeVectorStore(folder)  # reopened: the vectors are there, nothing is added twice
    await s.ensure_collection("m", DIM)
    assert len(await s.search_parts("o", "a", _vec(5), 5)) == 1
    assert len(await s.search_crosslingual("o", "a", _xl(4), 5)) == 1
    await s.close()


async def test_edge_shard_with_parts_gets_crosslingual_vector_added_on_open(tmp_path):
    """A shard as the version before cross-lingual vectors made it: `parts`, no `xl`."""



    folder = tmp_path / "old"
    folder.mkdir()
    shard = qe.EdgeShard.create(str(folder / "shard"), qe.EdgeConfig(
        vectors={DENSE: qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine),
                 PARTS: qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine, multivector_config=qe.MultiVectorConfig(
                     qe.MultiVectorComparator.MaxSim))},
        sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)}))
    shard.flush()
    shard.close()
    (folder / "collection.json").write_text(json.dumps({"model": "m", "dim": DIM, "vectors": [DENSE, SPARSE, PARTS]}))
    s = EdgeVectorStore(folder)
    await s.ensure_collection("m", DIM)
    p = _point(2, text="new")
    p.xl = _xl(2)
    await s.upsert("o", "a", [p])
    assert [h.payload["text"] for h in await s.search_crosslingual("o", "a", _xl(2), 5)] == ["new"]
    await s.close()
    assert XL in json.loads((folder / "collection.json").read_text())["vectors"]


async def test_server_old_collection_gets_parts_added_on_open(tmp_path):


    client = AsyncQdrantClient(path=str(tmp_path / "qdrant-local"))
    await client.create_collection(
        "knowledge", vectors_config={DENSE: qm.VectorParams(size=DIM, distance=qm.Distance.COSINE)},
        sparse_vectors_config={SPARSE: qm.SparseVectorParams(modifier=qm.Modifier.IDF)})
    await client.create_collection("knowledge__meta", vectors_config=qm.VectorParams(size=1, distance=qm.Distance.DOT))
    await client.upsert("knowledge__meta", points=[qm.PointStruct(id=1, vector=[1.0], payload={"model": "m", "dim": DIM})])
    s = QdrantServerVectorStore(client, "knowledge")
    await s.ensure_collection("m", DIM)
    p = _point(4, text="new")
    p.parts, p.xl = _parts(4, 5), _xl(4)
    await s.upsert("o", "a", [p, _point(6, text="old style")])
    assert [h.payload["text"] for h in await s.search_parts("o", "a", _vec(5), 5)] == ["new"]
    assert [h.payload["text"] for h in await s.search_crosslingual("o", "a", _xl(4), 5)] == ["new"]
    await s.ensure_collection("m", DIM)  # idempotent
    await s.close()


@pytest.mark.parametrize("in_ram", [True, False])
async def test_edge_payload_placement_follows_the_setting(tmp_path, monkeypatch, in_ram):


    monkeypatch.setenv("QDRANT_EDGE_PAYLOAD_IN_RAM", "true" if in_ram else "false")
    settings = Settings(data_dir=tmp_path)
    s = build_vector_store(settings)
    await s.ensure_collection("m", DIM)
    await s.upsert("o", "a", [_point(1, text="kept")])
    assert [h.payload["text"] for h in await s.search_dense("o", "a", _vec(1), 3)] == ["kept"]
    await s.close()
    config = json.loads((s.path / "shard" / "edge_config.json").read_text())  # what the engine persisted
    assert (config.get("payload_memory"), config.get("id_tracker_memory")) == (
        ("cached", "pinned") if in_ram else (None, None))
