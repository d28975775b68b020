"""Fusing dense and keyword candidate lists.

Reciprocal rank fusion throws the scores away; on the evaluation sets (see `core.ai.eval.retrieval`)
fusing *normalised scores* does better: each list's scores become z-scores over that query's
candidates (how far above the crowd a hit stands), a hit missing from one list gets that list's
lowest z, and the lists are summed with weights (`weighted_zscore_fusion`: whole-chunk dense,
best-sentence dense and keyword in the shipped ranking). RRF stays available for the comparison
the evaluation prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import fmean, pstdev

from core.storage.vectors.base import ScoredPoint

DEFAULT_KEYWORD_WEIGHT = 0.4  # tuned with sentence vectors (core.ai.retrieval.hybrid)


def _z(points: Sequence[ScoredPoint]) -> dict[str, float]:
    if not points:
        return {}
    scores = [p.score for p in points]
    mean, sd = fmean(scores), pstdev(scores)
    if sd < 1e-9:
        return {p.id: 0.0 for p in points}
    return {p.id: (p.score - mean) / sd for p in points}


def weighted_zscore_fusion(lists: Sequence[tuple[Sequence[ScoredPoint], float]]) -> list[tuple[str, float]]:
    """Sum over lists of `weight * z`; a hit missing from a list gets that list's lowest z. A
    list with weight 0 is left out entirely (its hits do not become candidates)."""
    active = [(_z(points), weight) for points, weight in lists if weight]
    floors = [min(z.values(), default=0.0) for z, _ in active]
    ids = list(dict.fromkeys(pid for z, _ in active for pid in z))
    fused = {i: sum(w * z.get(i, floor) for (z, w), floor in zip(active, floors, strict=True)) for i in ids}
    return sorted(fused.items(), key=lambda kv: kv[1], reverse=True)


def zscore_fusion(dense: Sequence[ScoredPoint], keyword: Sequence[ScoredPoint],
                  keyword_weight: float = DEFAULT_KEYWORD_WEIGHT) -> list[tuple[str, float]]:
    return weighted_zscore_fusion([(dense, 1.0), (keyword, keyword_weight)])


def rrf_fusion(dense: Sequence[ScoredPoint], keyword: Sequence[ScoredPoint], k: int = 60,
               keyword_weight: float = 1.0) -> list[tuple[str, float]]:
    fused: dict[str, float] = {}
    for weight, points in ((1.0, dense), (keyword_weight, keyword)):
        for rank, p in enumerate(points):
            fused[p.id] = fused.get(p.id, 0.0) + weight / (k + rank + 1)
    return sorted(fused.items(), key=lambda kv: kv[1], reverse=True)


def single(points: Sequence[ScoredPoint]) -> list[tuple[str, float]]:
    return [(p.id, p.score) for p in points]


def add_bonus(fused: Sequence[tuple[str, float]], bonus: dict[str, float],
              weight: float) -> list[tuple[str, float]]:
    """Add `weight * bonus[id]` to fused scores and re-sort (a signal outside the two lists)."""
    out = [(pid, score + weight * bonus.get(pid, 0.0)) for pid, score in fused]
    return sorted(out, key=lambda kv: kv[1], reverse=True)
