"""Retrieval over a price list, asked the way customers name items (`tests/data/pricelist_questions.jsonl`):
by name, by kind and attribute, with misspellings, in Russian, English and Spanish; never by
code alone. A question's answer is any of its rows (by item code: near-identical items differing
only in brand count as one answer when the question does not name the brand).

Recall@k of the shipped ranking over the candidates of the retriever, without the relevance
bar and without query translation (no LLM), so column roles are what changes between runs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from core.ai.eval.retrieval import Metrics
from core.ai.retrieval.hybrid import Ranking

# The shipped ranking without the cross-lingual encoder's signals: what those add on a price list.
NO_CROSSLINGUAL = Ranking(crosslingual=0.0, alignment=0.0)


@dataclass
class CatalogReport:
    overall: Metrics = field(default_factory=Metrics)
    by: dict[str, Metrics] = field(default_factory=dict)  # "ru", "en", "es", "name", "kind", "misspelt"
    no_crosslingual: Metrics = field(default_factory=Metrics)

    def line(self, label: str) -> str:
        parts = [f"{label}: r@1 {self.overall.recall(1):.3f} r@5 {self.overall.recall(5):.3f} "
                 f"({len(self.overall.ranks)} questions)"]
        parts += [f"{k} {m.recall(1):.2f}/{m.recall(5):.2f}" for k, m in sorted(self.by.items())]
        parts.append(f"without cross-lingual signals {self.no_crosslingual.recall(1):.3f}/"
                     f"{self.no_crosslingual.recall(5):.3f}")
        return "; ".join(parts)


def _rank(texts: list[str], codes: list[str]) -> int | None:
    for i, text in enumerate(texts):
        if any(code in text for code in codes):
            return i
    return None


async def evaluate_catalog(retriever, org_id: str, agent_id: str, questions: list[dict], *,
                           limit: int = 10) -> CatalogReport:
    """`questions`: `{"question", "codes", "language", "style"}` rows; the agent holds the price list."""
    report = CatalogReport()
    live = await retriever.live_generations(org_id, agent_id)
    for q in questions:
        found = await retriever.candidates(org_id, agent_id, q["question"], live, 30)
        by_id = found.by_id()
        ranked = [by_id[pid].payload.get("text", "") for pid, _ in retriever.rank(found, q["question"])[:limit]]
        rank = _rank(ranked, q["codes"])
        report.overall.ranks.append(rank)
        plain = [by_id[pid].payload.get("text", "") for pid, _ in retriever.rank(found, q["question"], NO_CROSSLINGUAL)]
        report.no_crosslingual.ranks.append(_rank(plain[:limit], q["codes"]))
        for key in (q.get("language"), q.get("style")):
            if key:
                report.by.setdefault(key, Metrics()).ranks.append(rank)
    return report


def describe(questions: list[dict]) -> str:
    langs = Counter(q.get("language") for q in questions)
    styles = Counter(q.get("style") for q in questions)
    return (f"{len(questions)} questions (" + ", ".join(f"{k} {v}" for k, v in sorted(langs.items())) + "; "
            + ", ".join(f"{k} {v}" for k, v in sorted(styles.items())) + ")")
