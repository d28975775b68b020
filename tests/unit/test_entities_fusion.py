"""Names/numbers overlap across scripts, and the fusion that adds it."""

from __future__ import annotations

import pytest

from core.ai.retrieval.entities import entity_overlap, skeleton
from core.ai.retrieval.fusion import add_bonus, weighted_zscore_fusion, zscore_fusion
from core.ai.retrieval.hybrid import MODES, SHIPPED, Candidates, HybridRetriever, Ranking
from core.storage.vectors.base import ScoredPoint


def test_skeleton_folds_cyrillic_and_latin_spellings():
    assert skeleton("Джаред") == skeleton("Jared") == "jared"
    assert skeleton("Филадельфия")[:5] == skeleton("Philadelphia")[:5]


def test_overlap_counts_numbers_and_transliterated_names():
    q = "Сколько мешков за карьеру было у Джареда Аллена в 2015 году?"
    hit = "Jared Allen, the active career sack leader with 136, in 2015."
    miss = "Kawann Short led the team in sacks with 11 in 2014."
    assert entity_overlap(q, hit) > 2.2  # 2015 (1) + Jared (~0.7) + Allen (~0.7)
    assert entity_overlap(q, miss) == 0.0
    # The question word at the start is not a name.
    assert entity_overlap("Сколько стоит?", "Skolko Ltd") == 0.0


def test_bonus_reorders_fused_candidates():
    dense = [ScoredPoint("a", 0.90, {}), ScoredPoint("b", 0.89, {}), ScoredPoint("c", 0.70, {})]
    fused = zscore_fusion(dense, [])
    assert [pid for pid, _ in fused][:2] == ["a", "b"]
    boosted = add_bonus(fused, {"b": 1.0}, 1.0)
    assert [pid for pid, _ in boosted][:2] == ["b", "a"]


def test_weighted_fusion_skips_zero_weight_lists_and_floors_missing_hits():
    a = [ScoredPoint("x", 0.9, {}), ScoredPoint("y", 0.5, {})]
    b = [ScoredPoint("y", 3.0, {}), ScoredPoint("z", 1.0, {})]
    assert [pid for pid, _ in weighted_zscore_fusion([(a, 1.0), (b, 0.0)])] == ["x", "y"]  # z never enters
    fused = dict(weighted_zscore_fusion([(a, 1.0), (b, 1.0)]))
    # x is missing from b: it gets b's lowest z (-1), as z gets a's lowest.
    assert fused == pytest.approx({"x": 1.0 - 1.0, "y": -1.0 + 1.0, "z": -1.0 - 1.0})


def _hit(pid: str, score: float, parts: int = 0, text: str = "") -> ScoredPoint:
    return ScoredPoint(pid, score, {"parts": parts, "text": text or f"text {pid}"})


def test_best_sentence_lifts_a_chunk_whose_whole_vector_is_diluted():
    retriever = HybridRetriever(None, None, None)
    dense = [_hit("a", 0.86, 3), _hit("b", 0.85, 3), _hit("c", 0.80, 3), _hit("d", 0.79, 3)]
    parts = [_hit("b", 0.93, 3), _hit("a", 0.86, 3), _hit("c", 0.82, 3), _hit("d", 0.80, 3)]
    found = Candidates(dense, parts, [])
    assert retriever.rank(found, "", MODES["dense"])[0][0] == "a"
    assert retriever.rank(found, "", SHIPPED)[0][0] == "b"
    assert retriever.rank(found, "", MODES["sentences"])[0] == ("b", 0.93)  # its own cosine


def test_chunks_without_sentence_vectors_rank_as_without_them():
    """A price-list agent (no chunk has parts, so the parts search finds nothing) ranks exactly as
    the whole-chunk ranking with the same keyword weight: the dense side is the whole chunk."""

    retriever = HybridRetriever(None, None, None)
    dense = [_hit("r1", 0.84), _hit("r2", 0.83), _hit("r3", 0.80), _hit("r4", 0.78)]
    keyword = [_hit("r3", 9.0), _hit("r2", 4.0), _hit("r5", 2.0)]
    shipped = retriever.rank(Candidates(dense, [], keyword), "", SHIPPED)
    whole = retriever.rank(Candidates(dense, [], keyword), "", Ranking(parts=0.0))
    assert [p for p, _ in shipped] == [p for p, _ in whole]
    assert all(abs(a - b) < 1e-9 for (_, a), (_, b) in zip(shipped, whole, strict=True))


def test_exact_ties_go_to_the_earlier_chunk_whatever_the_store_order():
    retriever = HybridRetriever(None, None, None)
    late = ScoredPoint("late", 0.9, {"source_id": "s", "chunk_index": 7, "text": "same"})
    early = ScoredPoint("early", 0.9, {"source_id": "s", "chunk_index": 2, "text": "same"})
    other = ScoredPoint("other", 0.7, {"source_id": "s", "chunk_index": 0, "text": "other"})
    for dense in ([late, early, other], [early, late, other]):
        for ranking in (SHIPPED, MODES["dense"]):
            assert [pid for pid, _ in retriever.rank(Candidates(dense), "", ranking)] == ["early", "late", "other"]


def test_names_match_across_case_endings_and_accents():
    # "Лютера" (genitive) is too far from "Luther" by trigrams alone; without its ending it is close.
    assert entity_overlap("Какой этап деятельности Лютера оказался самым плодотворным?", "Martin Luther wrote") > 0.4
    assert entity_overlap("Кто руководил движением под началом Деака?", "led by Ferenc Deák") == pytest.approx(1.0)


def test_borrowed_words_match_latin_words_at_half_weight():
    q = "По какому протоколу работала сеть?"
    assert entity_overlap(q, "The network used the X.25 protocol") == pytest.approx(0.5)  # Dice 1.0, halved
    assert entity_overlap(q, "Kawann Short led the team in sacks") == 0.0
    # Only lowercase Cyrillic words of five letters or more are tried: "сеть" is not.
    assert entity_overlap("Что такое сеть?", "a set of nodes") == 0.0
    # English questions have no Cyrillic words: nothing changes for them.
    assert entity_overlap("What protocol did the network use?", "The network used the X.25 protocol") == 0.0
