"""FAQ pairs entered by hand: each question with its answer is one unit."""

from __future__ import annotations

from core.ai.errors import ExtractionError
from core.ai.ingest.clean import clean_text
from core.ai.ingest.extract.base import Section


def extract_faq(pairs: list[dict[str, str]] | list[tuple[str, str]], title: str = "") -> list[Section]:
    sections = []
    for pair in pairs:
        question, answer = (pair["question"], pair["answer"]) if isinstance(pair, dict) else pair
        question, answer = clean_text(question), clean_text(answer)
        if question and answer:
            sections.append(Section(f"{question}\n{answer}", [title] if title else [], atomic=True,
                                    metadata={"question": question}))
    if not sections:
        raise ExtractionError("no question with an answer was given")
    return sections
