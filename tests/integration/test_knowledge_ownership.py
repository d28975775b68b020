"""One owner per embedded store, and no source stuck in progress (issue 23), on real Mongo and a
real Qdrant Edge shard: the owner lock, the indexing lease and its heartbeat, interruption,
the orphan sweep, and re-adding."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core.ai.errors import AlreadyAdded, IngestInterrupted, SourceBusy
from core.ai.ingest.leases import sweep_orphans
from core.models.knowledge import SourceStatus
from core.storage import owner
from core.storage.errors import StoreBusy
from core.storage.vectors.edge import EdgeVectorStore
from tests.integration.knowledge_helpers import knowledge_stack

ROOT = Path(__file__).resolve().parents[2]
TEXT = "# Delivery\n\nDelivery costs 5 euros and takes two days.\n\n# Returns\n\nReturns within 30 days."


class GatedEmbedder:
    """The real embedder behind a gate: indexing waits in batch number `stop_at` until the test
    opens the gate. Counts the passages it embeds."""

    def __init__(self, inner, stop_at: int = 1) -> None:
        self.inner = inner
        self.model_name, self.dim = inner.model_name, inner.dim
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()
        self.stop_at = stop_at
        self.batches = 0
        self.passages = 0

    async def embed_passages(self, texts, **kw):
        self.batches += 1
        if self.batches >= self.stop_at:
            self.waiting.set()
            await self.gate.wait()
        self.passages += len(texts)
        return await self.inner.embed_passages(texts, **kw)

    async def embed_query(self, text, **kw):
        return await self.inner.embed_query(text, **kw)


@pytest.fixture
async def stack(storage, tmp_path):
    ingestion, retriever, embedder, store = await knowledge_stack(storage, tmp_path, cross_lingual=False,
                                                                  ingest_heartbeat_s=0.2, ingest_stale_s=2)
    gated = GatedEmbedder(embedder)
    ingestion.embedder = gated
    yield ingestion, gated, store
    await store.close()


def test_a_second_process_gets_a_clear_refusal_not_the_wal_error(tmp_path: Path):
    folder = tmp_path / "vectors" / "knowledge"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from core.storage import owner; "
         "owner.acquire(sys.argv[1], 'the worker of kommo-agent up'); print('held', flush=True); input()",
         str(folder)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        found = owner.current_owner(folder)
        assert found is not None and found.pid == holder.pid and found.role == "the worker of kommo-agent up"
        store = EdgeVectorStore(folder)
        with pytest.raises(StoreBusy, match=rf"in use by the worker of kommo-agent up \(pid {holder.pid}\)"):
            asyncio.run(store.ensure_collection("m", 8))
    finally:
        holder.communicate("\n", timeout=10)
    # The kernel released it with the process: the store opens now, and is owned by us.
    store = EdgeVectorStore(folder)
    asyncio.run(store.ensure_collection("m", 8))
    assert owner.current_owner(folder).role == "this process"
    again = owner.acquire(folder, "another part of this process")  # shared within one process
    again.release()
    asyncio.run(store.close())
    assert owner.current_owner(folder) is None


async def test_an_interrupted_indexing_ends_failed_interrupted_and_a_rerun_succeeds(storage, stack):
    ingestion, gated, store = stack
    ingestion.batch_size = 4
    gated.stop_at = 2  # interrupted in its second batch, once the first is stored
    text = "\n\n".join(f"# Item {i}\n\nItem {i} costs {i * 10} euros and ships in {i} days." for i in range(12))
    source = await ingestion.add_text("o1", "a1", "Items", text)
    run = asyncio.create_task(ingestion.index_source("o1", source.id))
    await gated.waiting.wait()
    assert (await storage.knowledge.get("o1", source.id)).status == SourceStatus.EMBEDDING
    run.cancel()  # what Ctrl-C does to the CLI's indexing
    with pytest.raises(asyncio.CancelledError):
        await run
    failed = await storage.knowledge.get("o1", source.id)
    assert (failed.status, failed.error, failed.lease_owner) == (SourceStatus.FAILED, "interrupted", "")
    assert failed.generation == 0  # nothing of the partial run is live
    assert gated.passages > 0  # the first batch was embedded and stored
    gated.gate.set()
    done = await ingestion.index_source("o1", source.id)
    assert done.status == SourceStatus.READY and done.chunks_done == done.chunks_total > 4
    interrupted_and_rerun = gated.passages
    # The re-run embedded only what the interrupted run had not stored: together they embedded
    # as much as one uninterrupted run (of another agent, which can reuse nothing).
    gated.passages = 0
    other = await ingestion.add_text("o1", "a2", "Items", text)
    await ingestion.index_source("o1", other.id)
    assert interrupted_and_rerun == gated.passages
    points = await store.fetch("o1", "a1", where={"source_id": source.id})
    assert {p.payload["gen_key"] for p in points} == {f"{source.id}:{done.generation}"}


async def test_a_cancel_request_stops_a_running_indexing(storage, stack):
    ingestion, gated, _store = stack
    source = await ingestion.add_text("o1", "a1", "Terms", TEXT)
    run = asyncio.create_task(ingestion.index_source("o1", source.id))
    await gated.waiting.wait()
    await storage.knowledge.request_cancel("o1", source.id)  # what the CLI does through the stack
    with pytest.raises(IngestInterrupted):
        await asyncio.wait_for(run, 10)
    failed = await storage.knowledge.get("o1", source.id)
    assert failed.status == SourceStatus.FAILED and failed.error == "interrupted"


async def test_a_live_lease_refuses_a_second_run_and_the_sweep_fails_only_orphans(storage, stack):
    ingestion, gated, _store = stack
    gated.gate.set()
    live = await ingestion.add_text("o1", "a1", "Live", TEXT)
    dead = await ingestion.add_text("o1", "a1", "Dead", TEXT + " Dead.")
    silent = await ingestion.add_text("o1", "a1", "Silent", TEXT + " Silent.")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = socket.gethostname()
    try:
        for src, who in ((live, f"{host}:{sleeper.pid}:t1"), (dead, f"{host}:{gone.pid}:t2"),
                         (silent, "elsewhere:1:t3")):
            assert await storage.knowledge.claim("o1", src.id, who, stale_s=60)
            await storage.knowledge.set_status("o1", src.id, SourceStatus.EMBEDDING)
        # A redelivered task while the first run is alive: refused, the run's state untouched.
        with pytest.raises(SourceBusy):
            await ingestion.index_source("o1", live.id)
        assert (await storage.knowledge.get("o1", live.id)).status == SourceStatus.EMBEDDING
        # The dead owner's source goes at once; another host's only once its heartbeat is stale.
        assert await sweep_orphans(storage.knowledge, stale_s=2) == [dead.id]
        await asyncio.sleep(2.2)
        await storage.knowledge.heartbeat("o1", live.id, f"{host}:{sleeper.pid}:t1")
        assert await sweep_orphans(storage.knowledge, stale_s=2) == [silent.id]
        for src in (dead, silent):
            swept = await storage.knowledge.get("o1", src.id)
            assert (swept.status, swept.error) == (SourceStatus.FAILED, "interrupted")
        # A swept source indexes again.
        assert (await ingestion.index_source("o1", dead.id)).status == SourceStatus.READY
    finally:
        sleeper.kill()
        sleeper.wait()


async def test_same_content_again_is_already_added_and_a_failed_one_is_retried(storage, stack):
    ingestion, gated, _store = stack
    gated.gate.set()
    data = TEXT.encode()
    first = await ingestion.add_file("o1", "a1", "terms.md", data)
    with pytest.raises(AlreadyAdded, match=rf"terms.md is already added as {first.id}"):
        await ingestion.add_file("o1", "a1", "copy-of-terms.md", data)
    assert len(await storage.knowledge.for_agent("o1", "a1")) == 1
    other_agent = await ingestion.add_file("o1", "a2", "terms.md", data)  # another agent may have it
    assert other_agent.id != first.id
    pairs = [{"question": "Delivery?", "answer": "Two days."}]
    faq = await ingestion.add_faq("o1", "a1", pairs)
    with pytest.raises(AlreadyAdded):
        await ingestion.add_faq("o1", "a1", pairs)
    await storage.knowledge.set_status("o1", first.id, SourceStatus.FAILED, error="interrupted")
    retried = await ingestion.add_file("o1", "a1", "terms.md", data)
    assert retried.id == first.id and retried.status == SourceStatus.QUEUED
    assert (await ingestion.index_source("o1", first.id)).status == SourceStatus.READY
    assert {s.id for s in await storage.knowledge.for_agent("o1", "a1")} == {first.id, faq.id}
