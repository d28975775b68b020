"""Query latency of the embedded store (Qdrant Edge, HNSW after optimize) on 100k 384-d chunks
versus a numpy brute-force scan over the same vectors, in the same run.

    .venv/bin/python bench/retrieval.py [--points 100000] [--queries 300]
Last line: RESULT p50_ms=<x> p99_ms=<y> speedup=<brute p50 / ours>
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.storage.vectors.base import VectorPoint  # noqa: E402
from core.storage.vectors.edge import EdgeVectorStore  # noqa: E402

DIM = 384


def _clustered(n: int, rng: np.random.Generator) -> np.ndarray:
    # Realistic-ish: text embeddings sit in topical clusters, not uniformly on the sphere.
    centers = rng.normal(size=(200, DIM))
    x = centers[rng.integers(0, 200, n)] + 0.6 * rng.normal(size=(n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


async def main(points: int, queries: int) -> None:
    rng = np.random.default_rng(7)
    vectors = _clustered(points, rng)
    qs = _clustered(queries, rng)
    with tempfile.TemporaryDirectory() as folder:
        store = EdgeVectorStore(Path(folder), optimize_after=0)
        await store.ensure_collection("bench", DIM)
        t = time.perf_counter()
        for i in range(0, points, 5000):
            await store.upsert("org", "agent", [
                VectorPoint(id=str(uuid.UUID(int=j + 1)), dense=vectors[j].tolist(), payload={"source_id": f"s{j % 50}"})
                for j in range(i, min(i + 5000, points))])
        print(f"upsert {points}: {time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        await store.optimize()
        print(f"optimize: {time.perf_counter() - t:.1f} s", flush=True)
        ours, hits = [], 0
        for q in qs:
            t = time.perf_counter()
            res = await store.search_dense("org", "agent", q.tolist(), 10)
            ours.append((time.perf_counter() - t) * 1000)
            exact = int(np.argmax(vectors @ q)) + 1
            hits += int(res[0].id == str(uuid.UUID(int=exact)))
        brute = []
        for q in qs:
            t = time.perf_counter()
            scores = vectors @ q
            np.argpartition(-scores, 10)[:10]
            brute.append((time.perf_counter() - t) * 1000)
        await store.close()
    p50, p99, b50 = np.percentile(ours, 50), np.percentile(ours, 99), np.percentile(brute, 50)
    print(f"edge (filtered by org+agent, HNSW): p50 {p50:.2f} ms p99 {p99:.2f} ms; top-1 agrees with exact "
          f"{hits / queries:.3f}; numpy brute force p50 {b50:.2f} ms")
    print(f"RESULT p50_ms={p50:.2f} p99_ms={p99:.2f} speedup={b50 / p50:.1f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    asyncio.run(main(args.points, args.queries))
