"""Shared types of the knowledge pipeline (extract -> split -> embed -> retrieve) and runtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from core.usage.metering import UsageContext


@dataclass
class Chunk:
    """One retrievable unit of a knowledge source."""

    text: str
    index: int
    heading_path: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    sentence_vectors: bool = True  # see `core.ai.ingest.extract.base.Section`

    @property
    def heading(self) -> str:
        return " > ".join(self.heading_path)


@dataclass
class RetrievedChunk:
    source_id: str
    source_title: str
    chunk_index: int
    heading: str
    text: str
    score: float
    point_id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)  # page, row, url... of the chunk


@dataclass
class Verdict:
    """The relevance floor's judgement of a question against what was retrieved
    (`core.ai.retrieval.relevance`): answer from the knowledge, or say it is not there."""

    answer: bool
    kind: str  # product | policy | small_talk | off_topic
    reason: str
    signals: dict[str, float] = field(default_factory=dict)


@dataclass
class RetrievalResult:
    chunks: list[RetrievedChunk]
    nothing_relevant: bool
    # The best whole-chunk dense cosine (of the original or the translated query): unlike fused
    # scores it is comparable across queries; None when the retriever does not measure it.
    best_dense: float | None = None
    verdict: Verdict | None = None  # set by a retriever that applies the relevance floor

    @property
    def best(self) -> RetrievedChunk | None:
        return self.chunks[0] if self.chunks else None


class Retriever(Protocol):
    async def retrieve(self, org_id: str, agent_id: str, query: str, limit: int = 5, *,
                       usage: UsageContext | None = None) -> RetrievalResult:
        """`usage`: who pays for an LLM call retrieval may make (query translation)."""
