"""Names/numbers overlap across scripts, and the fusion that adds it."""

from __future__ import annotations

from core.ai.entities import entity_overlap, skeleton
from core.ai.fusion import add_bonus, zscore_fusion
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
