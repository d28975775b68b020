"""Hybrid retrieval: dense (e5) candidates by whole chunk and by best sentence, keyword (BM25 with
stemming) candidates, fused by z-scores, plus a names, numbers and borrowed-words overlap bonus
(`core.ai.retrieval.entities`) that works across languages.

Sentence vectors: a factoid question usually targets one sentence of a chunk, and that
sentence's own vector matches it better than the vector of the whole chunk, which averages every
sentence in. The dense side of the fusion is therefore `(1 - p) * z(whole chunk) + p * z(best
sentence)`; it is also the only signal that helps a Russian question over English documents,
where BM25 cannot. A chunk without sentence vectors (one sentence, a table row, or indexed before
they existed) counts its whole-chunk similarity as its best sentence, so an agent with price
lists only ranks exactly as it would without them.

The store filters every search by org and agent itself; this module adds the live-generation
filter (so a source being re-indexed is served from its previous generation until the flip) and
decides "nothing relevant" from the best whole-chunk dense similarity, which, unlike fused
scores, is comparable across queries (a translated question passes on either similarity).

A question in another language than the passages it finds (a Russian question over English
documents) gets two more signals from the cross-lingual encoder (`core.ai.encoders.crosslingual`), when
one is given: the chunks nearest to the question's own vector from that encoder (which also
adds candidates), and word alignment, the cross-language stand-in for keyword search. Both are
z-scored and fused like the others; on same-language questions they are not computed.

Query translation (only when a `QueryTranslator` is given, i.e. an LLM is configured): a
question in another language than the passages it finds is translated into their language and
searched again; the two rankings are fused by z-score with the translated one weighing
`TRANSLATED_WEIGHT`, so a good translation decides and a poor one is outvoted by the original.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from core.ai.encoders.crosslingual import CrossLingualEncoder
from core.ai.encoders.sparse import SparseEncoder
from core.ai.ingest.sources import gen_key
from core.ai.language import detect_language
from core.ai.retrieval.entities import entity_overlap
from core.ai.retrieval.fusion import DEFAULT_KEYWORD_WEIGHT, add_bonus, rrf_fusion, single, weighted_zscore_fusion
from core.ai.retrieval.relevance import judge
from core.ai.retrieval.translation import QueryTranslator
from core.ai.types import RetrievalResult, RetrievedChunk
from core.logging import get_logger
from core.storage.vectors.base import ScoredPoint
from core.usage.metering import UsageContext, translation_usage

log = get_logger(__name__)

# Cosine of (query, passage) below which nothing is treated as relevant: e5 similarities
# bunch up; unrelated text scores about 0.70-0.78, answering passages mostly above 0.80.
# Across languages e5 scores lower and no bar separates well: on XQuAD, 0.78 turns away 40% of
# answerable Russian questions over English passages (0.2% of English ones), yet "recipe for
# borscht" over Super Bowl passages outscores a real question. Without an LLM the bar stays (a
# handoff is safer than a wrong extract); with one, the translated query is held to it in the
# passages' language, which keeps 99.9% of them (see `retrieve`).
DEFAULT_MIN_DENSE_SCORE = 0.78
CROSS_LANGUAGE_KEYWORD_FACTOR = 0.1
# Share of the best-sentence z-score in the dense side, the keyword weight (`core.ai.retrieval.fusion`)
# and the weight of the names/numbers overlap (a count of matched numbers and names): tuned
# together on the even-numbered XQuAD questions (ru, en, ru over en) and COVID FAQ questions,
# reported on the odd ones as well (`kommo-agent eval retrieval`).
PARTS_WEIGHT = 0.6
DEFAULT_ENTITY_WEIGHT = 1.0
CROSS_LANGUAGE_ENTITY_WEIGHT = 2.0
# Weight of the translated query's ranking against the original's (1.0). With XQuAD's human
# translations standing in for the LLM: 1.0 -> recall@1 0.963, 2.0 -> 0.966, translated alone
# 0.968, original alone 0.886 (ru questions over en passages); 2 keeps the original's vote for
# a translation that went wrong.
TRANSLATED_WEIGHT = 2.0
# Cross-language only: weights of the cross-lingual encoder's chunk similarity and of word
# alignment (`core.ai.encoders.crosslingual`), tuned with the names/numbers weight on the even-numbered
# XQuAD questions (ru over en: recall@1/@5 0.916/0.992) and checked on the odd ones (0.921/0.995);
# the landscape is flat around them (`kommo-agent eval retrieval`).
CROSSLINGUAL_WEIGHT = 0.5
ALIGNMENT_WEIGHT = 0.5


@dataclass(frozen=True)
class Ranking:
    """How candidates are ordered. The default is what the product ships; the evaluation
    compares it with the single signals and the intermediate steps."""

    dense: float = 1.0  # weight of the dense side
    parts: float = PARTS_WEIGHT  # share of the best sentence in the dense side (0: whole chunk only)
    keyword: float = DEFAULT_KEYWORD_WEIGHT
    entities: bool = True
    rrf: bool = False  # reciprocal rank fusion of whole-chunk dense and keyword (for comparison)
    # Across languages only (with a cross-lingual encoder): weights of its chunk similarity and
    # of word alignment.
    crosslingual: float = CROSSLINGUAL_WEIGHT
    alignment: float = ALIGNMENT_WEIGHT


SHIPPED = Ranking()
MODES = {
    "hybrid": SHIPPED,
    "dense": Ranking(parts=0.0, keyword=0.0, entities=False, crosslingual=0.0, alignment=0.0),
    "sentences": Ranking(parts=1.0, keyword=0.0, entities=False, crosslingual=0.0, alignment=0.0),
    "keyword": Ranking(dense=0.0, keyword=1.0, entities=False, crosslingual=0.0, alignment=0.0),
    "rrf": Ranking(rrf=True, entities=False),  # plain: no names/numbers bonus, no cross-lingual signals
    # The ranking shipped before sentence vectors and cross-lingual signals.
    "whole-chunk": Ranking(parts=0.0, keyword=0.7, crosslingual=0.0, alignment=0.0),
}


@dataclass
class RetrievalConfig:
    ranking: Ranking = SHIPPED
    candidates: int = 30
    entity_weight: float = DEFAULT_ENTITY_WEIGHT
    cross_language_entity_weight: float = CROSS_LANGUAGE_ENTITY_WEIGHT
    min_dense_score: float = DEFAULT_MIN_DENSE_SCORE


@dataclass
class Candidates:
    """One query's candidate lists, each already filtered by tenant and live generation."""

    dense: list[ScoredPoint]  # by whole-chunk similarity
    parts: list[ScoredPoint] = field(default_factory=list)  # chunks with sentence vectors, by best sentence
    keyword: list[ScoredPoint] = field(default_factory=list)
    # Across languages, with a cross-lingual encoder: chunks by that encoder's similarity, and
    # every candidate above with its word-alignment score.
    crosslingual: list[ScoredPoint] = field(default_factory=list)
    alignment: list[ScoredPoint] = field(default_factory=list)

    def by_id(self) -> dict[str, ScoredPoint]:
        return {p.id: p for p in [*self.crosslingual, *self.keyword, *self.parts, *self.dense]}


class HybridRetriever:
    """`core.ai.types.Retriever` over a `VectorStore`, an `Embedder` and the BM25 encoder."""

    def __init__(self, storage, store, embedder, sparse: SparseEncoder | None = None,
                 config: RetrievalConfig | None = None, translator: QueryTranslator | None = None,
                 crosslingual: CrossLingualEncoder | None = None) -> None:
        self.storage = storage
        self.store = store
        self.embedder = embedder
        self.sparse = sparse or SparseEncoder()
        self.config = config or RetrievalConfig()
        self.translator = translator
        self.crosslingual = crosslingual

    async def live_generations(self, org_id: str, agent_id: str) -> list[str]:
        sources = await self.storage.knowledge.for_agent(org_id, agent_id)
        return [gen_key(s.id, s.generation) for s in sources if s.generation > 0]

    async def retrieve(self, org_id: str, agent_id: str, query: str, limit: int = 5,
                       mode: str | Ranking | None = None, *, usage: UsageContext | None = None) -> RetrievalResult:
        ranking = _ranking(mode) if mode is not None else self.config.ranking
        live = await self.live_generations(org_id, agent_id)
        if not live or not query.strip():
            return RetrievalResult([], nothing_relevant=True)
        n = max(self.config.candidates, limit)
        keyword, parts = bool(ranking.keyword or ranking.rrf), bool(ranking.dense and ranking.parts)
        call_key = usage.idempotency_key.removeprefix("llm:") if usage else None
        found = await self.candidates(org_id, agent_id, query, live, n, keyword=keyword, parts=parts,
                                      call_key=call_key)
        ranked = self.rank(found, query, ranking)
        by_id = found.by_id()
        threshold = self.config.min_dense_score
        best_dense = max((p.score for p in found.dense), default=0.0)
        relevant = best_dense >= threshold
        translated = await self.with_translation(org_id, agent_id, query, found, ranked, live, n, ranking=ranking,
                                                 usage=usage, keyword=keyword, parts=parts)
        if translated is not None:
            ranked, other = translated
            by_id = {**other.by_id(), **by_id}
            best_dense = max(best_dense, max((p.score for p in other.dense), default=0.0))
            relevant = relevant or best_dense >= threshold
        chunks = [_chunk(by_id[pid], score) for pid, score in ranked[:limit]]
        relevant = relevant and bool(chunks)
        result = RetrievalResult(chunks if relevant else [], nothing_relevant=not relevant, best_dense=best_dense)
        result.verdict = judge(query, result)
        return result

    async def with_translation(self, org_id: str, agent_id: str, query: str, found: Candidates,
                               ranked: list[tuple[str, float]], live: list[str], n: int, *,
                               ranking: Ranking | None = None, usage: UsageContext | None = None,
                               keyword: bool = True, parts: bool = True,
                               ) -> tuple[list[tuple[str, float]], Candidates] | None:
        """`ranked` (the original query's ranking of `found`) fused with the ranking of the query
        translated into the passages' language, and the translation's candidates; None when
        there is no translation (same language, no translator, or it failed)."""
        translated = await self.translation(org_id, agent_id, query, found, usage=usage)
        if translated is None:
            return None
        other = await self.candidates(org_id, agent_id, translated, live, n, keyword=keyword, parts=parts)
        return fuse_translated(ranked, self.rank(other, translated, ranking)), other

    async def translation(self, org_id: str, agent_id: str, query: str, found: Candidates, *,
                          usage: UsageContext | None = None) -> str | None:
        """`query` in the language of the passages it found, when that differs and a translator
        is configured; None otherwise, and whenever translating fails (search goes on without)."""
        if self.translator is None or not found.dense or not _language_differs(query, found.dense):
            return None
        target = corpus_language(found.dense)
        try:
            return await self.translator.translate(
                query, target, usage=usage or translation_usage(org_id, agent_id))
        except Exception:
            log.exception("query_translation_error", org_id=org_id, agent_id=agent_id)
            return None

    async def candidates(self, org_id: str, agent_id: str, query: str, live: list[str], n: int, *,
                         keyword: bool = True, parts: bool = True, vector=None,
                         call_key: str | None = None) -> Candidates:
        """Dense (whole chunk and best sentence) and keyword candidates, filtered by tenant
        inside the store; the three searches run concurrently."""
        where = {"gen_key": live}
        if vector is None:
            vector = await self.embedder.embed_query(query, org_id=org_id, agent_id=agent_id, call_key=call_key)
        dense_vector = vector.tolist()
        dense_hits, part_hits, keyword_hits = await asyncio.gather(
            self.store.search_dense(org_id, agent_id, dense_vector, n, where=where),
            self.store.search_parts(org_id, agent_id, dense_vector, n, where=where) if parts else _none(),
            self.store.search_sparse(org_id, agent_id, self.sparse.encode_query(query), n, where=where)
            if keyword else _none(),
        )
        found = Candidates(dense_hits, part_hits, keyword_hits)
        if self.crosslingual is not None and dense_hits and _language_differs(query, dense_hits):
            await self._add_crosslingual(org_id, agent_id, query, found, n, where)
        return found

    async def _add_crosslingual(self, org_id: str, agent_id: str, query: str, found: Candidates, n: int,
                                where: dict) -> None:
        """The cross-lingual encoder's own candidates, then word alignment of every candidate. A
        failure leaves both out: the question is still answered from the other signals."""
        try:
            vector = (await self.crosslingual.embed([query]))[0]
            hits = await self.store.search_crosslingual(org_id, agent_id, vector.tolist(), n, where=where)
            points = list({p.id: p for p in [*hits, *found.by_id().values()]}.values())
            scores = await self.crosslingual.align(query, [p.payload.get("text", "") for p in points])
        except Exception:
            log.exception("crosslingual_signals_error", org_id=org_id, agent_id=agent_id)
            return
        found.crosslingual = hits
        found.alignment = [ScoredPoint(p.id, score, p.payload) for p, score in zip(points, scores, strict=True)]

    def rank(self, found: Candidates, query: str = "", ranking: Ranking | None = None) -> list[tuple[str, float]]:
        """Order the candidates by `ranking` (default: the configured, shipped one). Exact ties
        (identical texts share one vector) go to the earlier chunk, not to whichever the store
        happened to list first, so a ranking is reproducible."""
        by_id = found.by_id()
        ranked = self._rank(found, query, ranking or self.config.ranking)
        return sorted(ranked, key=lambda kv: (-kv[1], _position(by_id[kv[0]])))

    def _rank(self, found: Candidates, query: str, ranking: Ranking) -> list[tuple[str, float]]:
        keyword_weight = ranking.keyword
        entity_weight = self.config.entity_weight if ranking.entities else 0.0
        crosslingual = alignment = 0.0
        if query and found.dense and _language_differs(query, found.dense):
            # A Russian question over English documents (or the reverse): keyword overlap is then
            # only names and numbers, and BM25's ranking is mostly noise, so trust dense, and let
            # the script-independent names/numbers signal and the cross-lingual ones weigh in.
            keyword_weight *= CROSS_LANGUAGE_KEYWORD_FACTOR
            entity_weight = self.config.cross_language_entity_weight if ranking.entities else 0.0
            crosslingual, alignment = ranking.crosslingual, ranking.alignment
        if ranking.rrf:
            fused = rrf_fusion(found.dense, found.keyword)
        else:
            lists = [(found.dense, ranking.dense * (1.0 - ranking.parts)),
                     (_with_single_sentence_chunks(found.parts, found.dense), ranking.dense * ranking.parts),
                     (found.keyword, keyword_weight),
                     (found.crosslingual, crosslingual if found.crosslingual else 0.0),
                     (found.alignment, alignment if found.alignment else 0.0)]
            active = [points for points, weight in lists if weight]
            if len(active) == 1 and not entity_weight:
                return single(active[0])  # one signal: its own scores (cosine, BM25)
            fused = weighted_zscore_fusion(lists)
        if not query or not entity_weight:
            return fused
        texts = {pid: _passage_text(p) for pid, p in found.by_id().items()}
        return add_bonus(fused, {pid: entity_overlap(query, texts[pid]) for pid, _ in fused}, entity_weight)


def _ranking(mode: str | Ranking) -> Ranking:
    if isinstance(mode, Ranking):
        return mode
    if mode not in MODES:
        raise ValueError(f"unknown retrieval mode {mode!r}; one of {', '.join(MODES)}")
    return MODES[mode]


def _with_single_sentence_chunks(parts: list[ScoredPoint], dense: list[ScoredPoint]) -> list[ScoredPoint]:
    """The best-sentence list, completed with the dense candidates that have no sentence vectors:
    for them the best sentence is the chunk itself."""
    seen = {p.id for p in parts}
    return [*parts, *(p for p in dense if not p.payload.get("parts") and p.id not in seen)]


def _position(point: ScoredPoint) -> tuple[str, int]:
    return str(point.payload.get("source_id", "")), int(point.payload.get("chunk_index", 0))


def _passage_text(point: ScoredPoint) -> str:
    return f"{point.payload.get('heading', '')}\n{point.payload.get('text', '')}"


def corpus_language(dense_hits: list[ScoredPoint]) -> str:
    """The language most of the three best dense hits are written in."""
    top = [detect_language(p.payload.get("text", "")) for p in dense_hits[:3]]
    return max(top, key=top.count)


def _language_differs(query: str, dense_hits: list[ScoredPoint]) -> bool:
    return detect_language(query) != corpus_language(dense_hits)


def fuse_translated(original: list[tuple[str, float]], translated: list[tuple[str, float]],
                    weight: float = TRANSLATED_WEIGHT) -> list[tuple[str, float]]:
    """Z-score fusion of the original query's final ranking and the translated query's."""
    def points(ranked: list[tuple[str, float]]) -> list[ScoredPoint]:
        return [ScoredPoint(pid, score, {}) for pid, score in ranked]

    return weighted_zscore_fusion([(points(original), 1.0), (points(translated), weight)])


async def _none() -> list[ScoredPoint]:
    return []


def _chunk(point: ScoredPoint, score: float) -> RetrievedChunk:
    p = point.payload
    return RetrievedChunk(
        source_id=p.get("source_id", ""), source_title=p.get("source_title", ""),
        chunk_index=int(p.get("chunk_index", 0)), heading=p.get("heading", ""), text=p.get("text", ""),
        score=float(score), point_id=point.id, metadata=dict(p.get("meta") or {}),
    )
