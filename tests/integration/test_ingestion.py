"""Ingestion end to end on real services: status/progress, dedupe, atomic re-index, deletes."""

from __future__ import annotations

import pytest

from core.ai.errors import ExtractionError
from core.errors import NotFound
from core.models.knowledge import SourceStatus
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


async def test_sentences_get_vectors_that_go_with_their_chunk(storage, stack):
    ingestion, retriever, embedder, store = stack
    src = await ingestion.add_text("o", "a", "Условия", DELIVERY)
    done = await ingestion.index_source("o", src.id)
    points = await store.fetch("o", "a", where={"source_id": src.id})
    with_parts = [p for p in points if p.payload["parts"]]
    # "Доставка" has two sentences (two part vectors); "Оплата" has one (its chunk vector is enough).
    assert [len(p.parts) for p in with_parts] == [p.payload["parts"] for p in with_parts] == [2]
    assert all(p.parts is None for p in points if not p.payload["parts"])
    assert embedder.passages == done.chunks_total + 2
    question = "Когда курьер привезёт заказ?"
    vector = (await embedder.embed_query(question)).tolist()
    hits = await store.search_parts("o", "a", vector, 5)
    assert [h.id for h in hits] == [with_parts[0].id]
    best = (await retriever.retrieve("o", "a", question)).best
    assert "следующий день" in best.text and "бесплатная" in best.text  # the whole chunk comes back
    assert best.heading == "Условия > Доставка" and best.source_id == src.id
    assert (await retriever.retrieve("o2", "a", question)).nothing_relevant  # tenant-filtered
    # Re-index with new content: the old generation's sentence vectors leave with their chunks.
    await storage.knowledge.update("o", src.id, {"options": {"text": DELIVERY.replace("следующий", "третий")}})
    await ingestion.index_source("o", src.id)
    hits = await store.search_parts("o", "a", vector, 5)
    assert len(hits) == 1 and "третий" in hits[0].payload["text"] and hits[0].payload["gen_key"] == f"{src.id}:2"
    await ingestion.delete_source("o", src.id)
    assert await store.search_parts("o", "a", vector, 5) == []


async def test_price_list_rows_get_no_sentence_vectors(storage, stack):
    ingestion, retriever, embedder, store = stack
    csv = ("Товар,Описание,Цена\nЖурнал учёта,Формат А4. Твёрдая обложка. 96 листов,70 руб.\n"
           "Папка,Кожа. Цвет чёрный. Два отделения,990 руб.\n").encode()
    src = await ingestion.add_file("o", "a", "prices.csv", csv)
    done = await ingestion.index_source("o", src.id)
    points = await store.fetch("o", "a", where={"source_id": src.id})
    assert len(points) == done.chunks_total == 2
    assert all(p.parts is None and p.payload["parts"] == 0 for p in points)
    assert embedder.passages == 2  # one vector per row, nothing more
    best = (await retriever.retrieve("o", "a", "Сколько стоит кожаная папка?")).best
    assert "990" in best.text


async def test_source_indexed_before_sentence_vectors_gets_them_on_reindex(storage, stack):
    ingestion, retriever, embedder, store = stack
    src = await ingestion.add_text("o", "a", "Условия", DELIVERY)
    first = await ingestion.index_source("o", src.id)
    # Make it look like the previous version indexed it: points without parts, the old hash.
    points = await store.fetch("o", "a", where={"source_id": src.id})
    for p in points:
        p.parts, p.payload["parts"] = None, 0
    await store.upsert("o", "a", points)
    await storage.knowledge.update("o", src.id, {"content_hash": "hash-of-the-previous-version"})
    before = embedder.passages
    again = await ingestion.index_source("o", src.id)  # not forced: the layout changed
    assert again.generation == first.generation + 1
    # The chunk that needs sentence vectors is embedded again with them; the other is reused.
    assert embedder.passages - before == 1 + 2
    points = await store.fetch("o", "a", where={"source_id": src.id})
    assert sorted(p.payload["parts"] for p in points) == [0, 2] and len(points) == again.chunks_total


DELIVERY_EN = ("# Delivery\n\nDelivery within Moscow is free for orders over 3000 rubles. "
               "The courier brings the order the next day.\n\n# Payment\n\nPay by card or in cash to the courier.")


async def test_source_indexed_without_crosslingual_vectors_gets_them_on_reindex(storage, tmp_path):
    """Turning the cross-lingual encoder on (or upgrading to the version that has it): a re-index
    adds each chunk's `xl` vector without embedding anything with e5 again."""
    ingestion, _, embedder, store = await knowledge_stack(storage, tmp_path, cross_lingual=False)
    try:
        src = await ingestion.add_text("o", "a", "Terms", DELIVERY_EN)
        first = await ingestion.index_source("o", src.id)
        assert all(p.xl is None for p in await store.fetch("o", "a", where={"source_id": src.id}))
        with_xl, retriever, _, _ = await knowledge_stack(storage, tmp_path, store=store)
        with_xl.embedder = embedder  # count e5 passages across both
        before = embedder.passages
        again = await with_xl.index_source("o", src.id)  # not forced: the layout changed
        assert again.generation == first.generation + 1 and embedder.passages == before
        points = await store.fetch("o", "a", where={"source_id": src.id})
        assert len(points) == again.chunks_total and all(p.xl and len(p.xl) == 512 for p in points)
        # A Russian question over the English chunks now has the cross-lingual signals.
        found = await retriever.candidates("o", "a", "Когда курьер привезёт заказ?",
                                           await retriever.live_generations("o", "a"), 5)
        assert found.crosslingual and found.alignment
        assert {p.id for p in found.alignment} == set(found.by_id())
        best = (await retriever.retrieve("o", "a", "Когда курьер привезёт заказ?")).best
        assert "next day" in best.text
        # Same-language questions do not pay for them.
        same = await retriever.candidates("o", "a", "When does the courier bring the order?",
                                          await retriever.live_generations("o", "a"), 5)
        assert same.crosslingual == [] and same.alignment == []
    finally:
        await store.close()


class _BrokenEncoder:
    """A cross-lingual encoder whose model cannot run (say, a damaged install)."""

    async def embed(self, texts):
        raise RuntimeError("model weights unreadable")

    async def align(self, question, passages):
        raise RuntimeError("model weights unreadable")


async def test_a_failing_crosslingual_encoder_leaves_retrieval_working(storage, tmp_path):
    ingestion, retriever, _, store = await knowledge_stack(storage, tmp_path)
    try:
        src = await ingestion.add_text("o", "a", "Terms", DELIVERY_EN)
        await ingestion.index_source("o", src.id)
        retriever.crosslingual = _BrokenEncoder()
        found = await retriever.candidates("o", "a", "Когда курьер привезёт заказ?",
                                           await retriever.live_generations("o", "a"), 5)
        assert found.dense and found.crosslingual == [] and found.alignment == []
        assert "next day" in (await retriever.retrieve("o", "a", "Когда курьер привезёт заказ?")).best.text
    finally:
        await store.close()


async def test_a_failing_crosslingual_encoder_fails_the_source_with_a_reason(storage, tmp_path):
    """An unexpected error while indexing ends in `failed` with a reason, the half-written
    generation is removed and the previous one stays live."""
    ingestion, retriever, _, store = await knowledge_stack(storage, tmp_path)
    try:
        src = await ingestion.add_text("o", "a", "Terms", DELIVERY_EN)
        first = await ingestion.index_source("o", src.id)
        ingestion.crosslingual = _BrokenEncoder()
        await storage.knowledge.update("o", src.id, {"options": {"text": DELIVERY_EN.replace("3000", "5000")}})
        with pytest.raises(RuntimeError):
            await ingestion.index_source("o", src.id)
        failed = await storage.knowledge.get("o", src.id)
        assert failed.status == SourceStatus.FAILED and "RuntimeError" in failed.error
        assert failed.generation == first.generation
        points = await store.fetch("o", "a", where={"source_id": src.id})
        assert {p.payload["gen_key"] for p in points} == {f"{src.id}:{first.generation}"}
        assert "next day" in (await retriever.retrieve("o", "a", "When does the courier bring the order?")).best.text
    finally:
        await store.close()
