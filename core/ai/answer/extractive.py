"""No-LLM mode: answer with the best knowledge extracts, phrased as an excerpt, or hand off.

To be useful rather than a dump, the answer takes the sentences (or price-list rows) of the
best chunks that share the most word stems with the question, keeps them in document order,
cuts at sentence boundaries within a length limit, renders "Header: value; ..." rows as short
lines, and names its source. A second chunk is added only when it scores close to the first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from core.ai.answer.phrases import phrase
from core.ai.types import RetrievalResult, RetrievedChunk

MAX_CHARS = 700
SECOND_CHUNK_RATIO = 0.85  # a second extract only when it is nearly as relevant as the best
_SENTENCE = re.compile(r"(?<=[.!?…])\s+(?=[\"«(\[A-ZА-ЯЁ0-9¿¡])|\n+")
_WORD = re.compile(r"\w+", re.U)
_PAIR = re.compile(r"^\s*[^:;|]{1,60}:\s*[^;|]+$")


@dataclass
class ExtractiveAnswer:
    text: str
    used: list[RetrievedChunk] = field(default_factory=list)
    handoff: bool = False


def _stems(text: str) -> set[str]:
    # A 5-letter prefix is a crude stemmer that works for ru/es/pt inflection and English alike.
    return {w[:5] for w in _WORD.findall(text.lower()) if len(w) >= 3 or w.isdigit()}


def _is_row(line: str) -> bool:
    parts = [p for p in re.split(r";|\s\|\s", line) if p.strip()]
    return len(parts) >= 2 and sum(bool(_PAIR.match(p)) for p in parts) >= 2


def _render_row(line: str) -> str:
    parts = [p.strip() for p in re.split(r";|\s\|\s", line) if p.strip()]
    return "• " + " · ".join(parts)


def _units(text: str) -> list[str]:
    """Rows stay whole; prose is split into sentences."""
    units: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        units.extend([line.strip()] if _is_row(line) else [s.strip() for s in _SENTENCE.split(line) if s.strip()])
    return units


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "), cut.rfind("\n"))
    return (cut[: end + 1] if end > limit // 3 else cut.rsplit(" ", 1)[0]).rstrip() + " …"


def excerpt(question: str, chunk: RetrievedChunk, limit: int = MAX_CHARS) -> str:
    """The most relevant part of `chunk` for `question`, at most about `limit` characters."""
    units = _units(chunk.text)
    if not units:
        return ""
    wanted = _stems(question)
    scores = [len(wanted & _stems(u)) for u in units]
    rows = [i for i, u in enumerate(units) if _is_row(u)]
    if len(rows) > len(units) // 2:  # a price-list chunk: the matching rows, best first
        order = sorted(range(len(units)), key=lambda i: (-scores[i], i))
        picked = [i for i in order if scores[i] > 0][:5] or order[:3]
    else:  # prose: grow a window around the best sentence while it fits
        best = max(range(len(units)), key=lambda i: (scores[i], -i))
        picked, lo, hi = [best], best, best
        size = len(units[best])
        while True:
            grown = False
            for j in (hi + 1, lo - 1):
                if 0 <= j < len(units) and size + len(units[j]) + 1 <= limit:
                    picked.append(j)
                    size += len(units[j]) + 1
                    lo, hi = min(lo, j), max(hi, j)
                    grown = True
            if not grown:
                break
        picked.sort()
    lines = [_render_row(units[i]) if _is_row(units[i]) else units[i] for i in picked]
    joined = "\n".join(lines) if any(_is_row(units[i]) for i in picked) else " ".join(lines)
    return _cut(joined, limit)


def _label(chunk: RetrievedChunk) -> str:
    return f"{chunk.source_title} — {chunk.heading}" if chunk.heading else chunk.source_title


def extractive_answer(question: str, result: RetrievalResult, language: str,
                      max_chars: int = MAX_CHARS) -> ExtractiveAnswer:
    if result.nothing_relevant or not result.chunks:
        return ExtractiveAnswer(text=phrase("nothing_found", language), handoff=True)
    best = result.chunks[0]
    used = [best]
    for other in result.chunks[1:]:
        if other.score >= best.score * SECOND_CHUNK_RATIO and other.text.strip() != best.text.strip():
            used.append(other)
            break
    per_chunk = max_chars // len(used)
    parts = [(c, excerpt(question, c, per_chunk)) for c in used]
    parts = [(c, t) for c, t in parts if t]
    if not parts:
        return ExtractiveAnswer(text=phrase("nothing_found", language), handoff=True)
    body = "\n\n".join(t if "\n" in t or t.startswith("•") else f"«{t}»" for _, t in parts)
    labels = list(dict.fromkeys(_label(c) for c, _ in parts))
    key = "source" if len(labels) == 1 else "sources"
    text = (f"{phrase('found_one', language)}\n\n{body}\n\n"
            f"{phrase(key, language)}: {'; '.join(labels)}.\n{phrase('outro', language)}")
    return ExtractiveAnswer(text=text, used=[c for c, _ in parts])
