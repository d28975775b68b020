"""Retrieval evaluation: ingest passages into a temporary agent, ask every question, and report
recall@1/5 and MRR per ranking method, so each step's gain is visible in one run (every method
ranks the same candidates of the same run).

Dataset files are JSONL: passages `{"passage_id", "text", "title"? | "faq_question"?}` and
questions `{"question", "passage_id", "id"?}` (the format of ../shared/datasets/qa). A passage's
title (or FAQ question) becomes its heading, i.e. the chunk context the product gives every chunk.

Query translation (`core.ai.retrieval.translation`) adds one line: with an LLM configured the
evaluation asks it, as the product would; `ReferenceTranslations` instead takes each question's
human translation from a parallel file (XQuAD's English questions share the Russian ones' ids),
which measures what the step gives with a perfect translator: an upper bound, labelled as such.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.ai.retrieval.hybrid import MODES, Ranking
from core.ai.retrieval.hybrid import SHIPPED as SHIPPED_RANKING
from core.ids import new_id

# (label, ranking): single signals and the dense side first, then the steps from the ranking
# shipped before sentence vectors ("previous") to the one shipped now; each step adds one thing to
# the line above it, so its gain is the difference of the two lines (the last two columns show
# recall@1 against dense only and against previous). Steps 3 and 4 act only on questions in
# another language than the passages (same-language sets show the same figures as step 2). The
# last line is a control: the tuned keyword weight without sentence vectors.
_NO_XL = {"crosslingual": 0.0, "alignment": 0.0}
DENSE = "dense only (e5, whole chunk)"
KEYWORD = "keyword only (BM25 + stemmer)"
PREVIOUS = "previous shipped: z-score dense + keyword 0.7 + names/numbers"
STEP2 = f"step 2: step 1 with keyword weight {SHIPPED_RANKING.keyword}, tuned"
STEP3 = "step 3: step 2 + cross-lingual encoder across languages"
SHIPPED = "step 4: step 3 + word alignment across languages (shipped)"
METHODS: list[tuple[str, Ranking]] = [
    (DENSE, MODES["dense"]),
    ("sentence vectors only (best sentence)", MODES["sentences"]),
    (f"dense + sentence vectors ({SHIPPED_RANKING.parts} of the dense side)",
     Ranking(keyword=0.0, entities=False, **_NO_XL)),
    (KEYWORD, MODES["keyword"]),
    ("RRF k=60 (plain hybrid)", MODES["rrf"]),
    ("dense + names/numbers", Ranking(parts=0.0, keyword=0.0, **_NO_XL)),
    (PREVIOUS, MODES["whole-chunk"]),
    ("step 1: previous + sentence vectors", Ranking(keyword=0.7, **_NO_XL)),
    (STEP2, Ranking(**_NO_XL)),
    (STEP3, Ranking(alignment=0.0)),
    (SHIPPED, SHIPPED_RANKING),
    (f"control: previous with keyword {SHIPPED_RANKING.keyword}, no sentence vectors", Ranking(parts=0.0, **_NO_XL)),
]


REFERENCE = "reference translations (upper bound: a perfect translator)"
TRANSLATED = "step 5: shipped + question translated to the passages' language"


class ReferenceTranslations:
    """A `QueryTranslator` answering from a parallel questions file (same `id`, other language)."""

    def __init__(self, questions: list[dict], parallel: list[dict]) -> None:
        by_id = {q["id"]: q["question"] for q in parallel if q.get("id")}
        self._by_text = {q["question"]: by_id[q["id"]] for q in questions if q.get("id") in by_id}
        if not self._by_text:
            raise ValueError("the translations file shares no question ids with the dataset")

    async def translate(self, text: str, language: str, *, usage=None) -> str | None:
        return self._by_text.get(text)


@dataclass
class Metrics:
    ranks: list[int | None] = field(default_factory=list)  # 0-based passage rank, None: not found

    def recall(self, k: int) -> float:
        return sum(r is not None and r < k for r in self.ranks) / max(1, len(self.ranks))

    @property
    def mrr(self) -> float:
        return sum(1 / (r + 1) for r in self.ranks if r is not None) / max(1, len(self.ranks))


@dataclass
class EvalReport:
    methods: dict[str, Metrics]
    questions: int
    passages: int
    ingest_s: float
    query_s: float
    chunks: int = 0
    sentence_vectors: int = 0
    translator: str = ""  # "": no translation step; else who translated (the LLM model, or reference)
    translated: int = 0  # questions that were translated


def load_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def passage_sections(passages: list[dict]) -> list[dict]:
    sections = []
    for p in passages:
        title = (p.get("title") or p.get("faq_question") or "").replace("_", " ").strip()
        sections.append({"text": p["text"].lstrip("\ufeff"), "heading_path": [title] if title else [],
                         "metadata": {"passage_id": p["passage_id"]}})
    return sections


def _passage_rank(ranked_ids: list[str], payloads: dict[str, dict], gold: str) -> int | None:
    seen: list[str] = []
    for pid in ranked_ids:
        passage = (payloads[pid].get("meta") or {}).get("passage_id")
        if passage not in seen:
            seen.append(passage)
        if passage == gold:
            return seen.index(passage)
    return None


async def evaluate_retrieval(ingestion, retriever, questions: list[dict], passages: list[dict], *,
                             org_id: str | None = None, agent_id: str | None = None,
                             progress: Callable[[str], None] | None = None,
                             translator_label: str = "") -> EvalReport:
    """Ingest `passages` into a throwaway agent, rank them for every question, clean up. With
    `retriever.translator` set, the shipped ranking is also measured with query translation
    (the `TRANSLATED` line; a question in the passages' language is ranked as without)."""
    org_id = org_id or new_id("evalorg")
    agent_id = agent_id or new_id("evalagent")
    say = progress or (lambda _msg: None)
    start = time.perf_counter()
    source = await ingestion.add_text(org_id, agent_id, "evaluation passages", sections=passage_sections(passages))
    try:
        async def _progress(s) -> None:
            say(f"embedding {s.chunks_done}/{s.chunks_total} chunks")
        indexed = await ingestion.index_source(org_id, source.id, on_progress=_progress)
        ingest_s = time.perf_counter() - start
        points = await ingestion.store.fetch(org_id, agent_id, where={"source_id": source.id})
        live = await retriever.live_generations(org_id, agent_id)
        methods = {label: Metrics() for label, _ in METHODS}
        translating = retriever.translator is not None
        if translating:
            methods[TRANSLATED] = Metrics()
        translated = 0
        start = time.perf_counter()
        for n, q in enumerate(questions, 1):
            found = await retriever.candidates(org_id, agent_id, q["question"], live, 30)
            payloads = {pid: p.payload for pid, p in found.by_id().items()}
            for label, ranking in METHODS:
                ranked = [pid for pid, _ in retriever.rank(found, q["question"], ranking)]
                methods[label].ranks.append(_passage_rank(ranked, payloads, q["passage_id"]))
            if translating:
                ranked = retriever.rank(found, q["question"])
                both = await retriever.with_translation(org_id, agent_id, q["question"], found, ranked, live, 30)
                if both is not None:
                    translated += 1
                    ranked, again = both
                    payloads.update({pid: p.payload for pid, p in again.by_id().items()})
                methods[TRANSLATED].ranks.append(_passage_rank([pid for pid, _ in ranked], payloads,
                                                               q["passage_id"]))
            if n % 100 == 0:
                say(f"asked {n}/{len(questions)} questions")
        return EvalReport(methods, len(questions), len(passages), ingest_s, time.perf_counter() - start,
                          chunks=indexed.chunks_total,
                          sentence_vectors=sum(int(p.payload.get("parts") or 0) for p in points),
                          translator=(translator_label or "configured") if translating else "",
                          translated=translated)
    finally:
        await ingestion.delete_source(org_id, source.id)


def format_report(report: EvalReport) -> str:
    lines = [f"{report.questions} questions over {report.passages} passages "
             f"({report.chunks} chunks, {report.sentence_vectors} sentence vectors; "
             f"ingest {report.ingest_s:.1f} s, queries {report.query_s:.1f} s)",
             f"{'method':66s} recall@1 recall@5    MRR  r@1 vs dense  vs previous"]
    dense = report.methods[DENSE]
    previous = report.methods[PREVIOUS]
    for label, m in report.methods.items():
        lines.append(f"{label:66s} {m.recall(1):8.4f} {m.recall(5):8.4f} {m.mrr:7.4f} "
                     f"{m.recall(1) - dense.recall(1):+13.4f} {m.recall(1) - previous.recall(1):+12.4f}")
    if report.translator:
        lines.append(f"  (step 3: {report.translated} of {report.questions} questions translated, by "
                     f"{report.translator})")
    # RESULT is what the product does in this configuration: with the LLM translating, step 3;
    # reference translations are an upper bound, not the product, so they stay out of it.
    final = TRANSLATED if report.translator and report.translator != REFERENCE else SHIPPED
    shipped = report.methods[final]
    keyword = report.methods[KEYWORD]
    lines.append(f"RESULT recall@1={shipped.recall(1):.4f} recall@5={shipped.recall(5):.4f} "
                 f"mrr={shipped.mrr:.4f} dense_recall@1={dense.recall(1):.4f} "
                 f"keyword_recall@1={keyword.recall(1):.4f}")
    return "\n".join(lines)
