"""What every extractor returns: sections of text with the heading path they sit under."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Section:
    text: str
    heading_path: list[str] = field(default_factory=list)
    # atomic: a unit that must stay one chunk (a price-list row, a FAQ pair).
    atomic: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    # sentence_vectors: whether each sentence of its chunks also gets a vector of its own
    # (`core.ai.ingest.split.chunk_parts`). False for table rows: a row is one fact, its fields are not
    # sentences, and a price list would pay for thousands of vectors nobody needs.
    sentence_vectors: bool = True


class SectionBuilder:
    """Collects paragraphs under the current heading path (used by DOCX, Markdown, HTML)."""

    def __init__(self, root: list[str] | None = None) -> None:
        self.root = list(root or [])
        self.path: list[tuple[int, str]] = []
        self.paragraphs: list[str] = []
        self.sections: list[Section] = []

    def heading(self, level: int, title: str) -> None:
        self.flush()
        self.path = [(lvl, t) for lvl, t in self.path if lvl < level] + [(level, title)]

    def paragraph(self, text: str) -> None:
        if text.strip():
            self.paragraphs.append(text.strip())

    def atomic(self, text: str, **metadata: Any) -> None:
        self.flush()
        self.sections.append(Section(text, self.current_path(), atomic=True, metadata=metadata))

    def current_path(self) -> list[str]:
        return self.root + [t for _, t in self.path]

    def flush(self) -> None:
        if self.paragraphs:
            self.sections.append(Section("\n\n".join(self.paragraphs), self.current_path()))
            self.paragraphs = []

    def build(self) -> list[Section]:
        self.flush()
        return self.sections
