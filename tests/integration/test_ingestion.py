"""Ingestion end to end on real services: status/progress, dedupe, atomic re-index, deletes."""

from __future__ import annotations

import pytest

from core.ai.extract.base import ExtractionError
from core.models.knowledge import SourceStatus
from core.errors import NotFound
from tests.integration.knowledge_helpers import knowledge_stack

DELIVERY = ("# Доставка\n\nДоставка по Москве бесплатная при заказе от 3000 рублей. "
            "Курьер привозит заказ на следующий день.\n\n# Оплата\n\nОплата картой или наличными курьеру.")
RETURNS = "# Возврат\n\nВозврат товара возможен в течение 14 дней с момента покупки при сохранении чека."


@pytest.fixture
async def stack(storage, tmp_path):
    ingestion, retriever, embedder, store = await knowledge_stack(storage, tmp_path, chunk_tokens=60,
                                                                  chunk_overlap_tokens=10)
    yield ingestion, retriever, embedder, store
    await store.close()


async def test_text_source_indexes_and_is_isolated(storage, stack):
    ingestion, retriever, embedder, store = stack
    src = await ingestion.add_text("orgA", "ag1", "Условия", DELIVERY)
    assert src.status == SourceStatus.QUEUED
    done = await ingestion.index_source("orgA", src.id)
    assert done.status == SourceStatus.READY and done.chunks_done == done.chunks_total > 0
    assert done.generation == 1 and done.content_hash
    result = await retriever.retrieve("orgA", "ag1", "Сколько стоит доставка по Москве?")
    assert not result.nothing_relevant
    assert "бесплатная" in result.best.text and result.best.heading == "Условия > Доставка"
    assert result.best.source_id == src.id and result.best.source_title == "Условия"
    # Another org and another agent of the same org see nothing of it.
    assert (await retriever.retrieve("orgB", "ag1", "доставка по Москве")).nothing_relevant
    assert (await retriever.retrieve("orgA", "ag2", "доставка по Москве")).nothing_relevant
    # Unrelated question: nothing relevant rather than a random extract.
    off = await retriever.retrieve("orgA", "ag1", "Who won the Super Bowl in 2016?")
    assert off.nothing_relevant and off.chunks == []


async def test_identical_content_is_embedded_once(storage, stack):
    ingestion, retriever, embedder, store = stack
    a = await ingestion.add_text("o", "a", "Возврат", RETURNS)
    await ingestion.index_source("o", a.id)
    first = embedder.passages
    assert first > 0
    again = await ingestion.index_source("o", a.id)  # unchanged content: whole source skipped
    assert embedder.passages == first and again.generation == 1
    b = await ingestion.add_text("o", "a", "Возврат", RETURNS)  # same text as another source
    await ingestion.index_source("o", b.id)
    assert embedder.passages == first  # vectors reused by content hash
    assert await store.count("o", "a") == 2 * (await store.count("o", "a", where={"source_id": a.id}))
    await ingestion.delete_source("o", a.id)  # b keeps its own points
    assert (await retriever.retrieve("o", "a", "Можно ли вернуть товар?")).best.source_id == b.id


async def test_reindex_is_atomic_for_readers(storage, stack):
    ingestion, retriever, embedder, store = stack
    src = await ingestion.add_text("o", "a", "Условия", DELIVERY)
    await ingestion.index_source("o", src.id)
    old_points = await store.count("o", "a")
    await storage.knowledge.update("o", src.id, {"options": {"text": DELIVERY.replace("3000", "5000")
                                                              + "\n\n" + RETURNS}})
    seen_mid_way: list[str] = []

    async def mid_way(progress) -> None:  # readers during the write still get the old generation
        result = await retriever.retrieve("o", "a", "бесплатная доставка от какой суммы?", limit=10)
        seen_mid_way.extend(c.text for c in result.chunks)
        assert await store.count("o", "a", where={"source_id": src.id}) > old_points - 1

    done = await ingestion.index_source("o", src.id, on_progress=mid_way)
    assert seen_mid_way and all("5000" not in t for t in seen_mid_way)
    assert any("3000" in t for t in seen_mid_way)
    assert done.generation == 2 and done.status == SourceStatus.READY
    after = await retriever.retrieve("o", "a", "бесплатная доставка от какой суммы?", limit=10)
    assert any("5000" in c.text for c in after.chunks) and all("3000" not in c.text for c in after.chunks)
    # Old generation deleted: only the new chunks remain.
    assert await store.count("o", "a") == done.chunks_total


async def test_file_source_delete_removes_vectors_and_file(storage, stack):
    ingestion, retriever, embedder, store = stack
    src = await ingestion.add_file("o", "a", "notes.md", DELIVERY.encode("utf-8"))
    await ingestion.index_source("o", src.id)
    assert await store.count("o", "a") > 0
    with pytest.raises(NotFound):
        await ingestion.delete_source("other-org", src.id)
    await ingestion.delete_source("o", src.id)
    assert await store.count("o", "a") == 0
    assert await storage.knowledge.get("o", src.id) is None
    with pytest.raises(NotFound):
        await storage.files.get("o", src.file_id)


async def test_broken_file_fails_with_reason_and_rejections(storage, stack):
    ingestion, retriever, embedder, store = stack
    src = await ingestion.add_file("o", "a", "broken.pdf", b"%PDF-1.4 this is not really a pdf")
    with pytest.raises(ExtractionError):
        await ingestion.index_source("o", src.id)
    failed = await storage.knowledge.get("o", src.id)
    assert failed.status == SourceStatus.FAILED and "PDF" in failed.error
    with pytest.raises(ExtractionError, match="Supported: PDF, DOCX"):
        await ingestion.add_file("o", "a", "legacy.doc", b"\xd0\xcf\x11\xe0 data")
    with pytest.raises(ExtractionError, match="empty"):
        await ingestion.add_file("o", "a", "empty.txt", b"")
    with pytest.raises(ExtractionError, match="limit"):
        await ingestion.add_file("o", "a", "big.txt", b"x" * (ingestion.settings.max_file_bytes + 1))
    assert await storage.knowledge.count("o") == 1  # refused uploads create nothing
