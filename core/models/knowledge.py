from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from core.models.base import OrgDocument


class SourceKind(StrEnum):
    FILE = "file"
    URL = "url"
    FAQ = "faq"
    TEXT = "text"


class SourceStatus(StrEnum):
    QUEUED = "queued"
    PARSING = "parsing"
    EMBEDDING = "embedding"
    READY = "ready"
    FAILED = "failed"


class KnowledgeSource(OrgDocument):
    agent_id: str
    kind: SourceKind
    title: str
    file_id: str | None = None  # GridFS id of the uploaded bytes
    url: str | None = None
    mime: str | None = None
    size_bytes: int = 0
    content_hash: str | None = None
    status: SourceStatus = SourceStatus.QUEUED
    error: str | None = None
    chunks_done: int = 0
    chunks_total: int = 0
    eta_s: float | None = None  # seconds left while embedding (None: not known yet)
    # Tabular sources: each column's role ({"header", "role": embed|keyword|payload, "kind"}),
    # as decided at the last indexing (`core.ai.ingest.columns`).
    columns: list[dict[str, str]] = Field(default_factory=list)
    generation: int = 0  # bumps on re-index; readers see only the live generation
    options: dict[str, Any] = Field(default_factory=dict)
    updated_at: datetime | None = None
    # The indexing lease: who works on the source now ("host:pid:token", "" = nobody), renewed by
    # its heartbeat; `lease_seq` makes claiming it a compare-and-set on an integer.
    lease_owner: str = ""
    lease_seq: int = 0
    heartbeat_at: datetime | None = None
    cancel_requested: bool = False

    @property
    def in_progress(self) -> bool:
        return self.status in (SourceStatus.PARSING, SourceStatus.EMBEDDING)
