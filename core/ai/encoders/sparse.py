"""Keyword (BM25) sparse vectors with a Snowball stemmer per language.

Qdrant's own BM25 (from `qdrant_edge`, in-process, no data files) turns text into hashed term
ids with term-frequency weights; the store applies IDF (`Modifier.Idf`). Documents and queries go
through the same tokenizer, stopwords and stemmer for their language, so the same word form gives
the same index on both sides, and the resulting `SparseVec` works with either store.
"""

from __future__ import annotations

from functools import lru_cache

import qdrant_edge as qe

from core.ai.language import detect_language
from core.storage.vectors.base import SparseVec

# Our language codes and the Snowball stemmer each is indexed with.
STEMMERS = {"ru": "russian", "en": "english", "es": "spanish", "pt": "portuguese"}


@lru_cache(maxsize=len(STEMMERS))
def _model(language: str) -> qe.Bm25:
    return qe.Bm25(qe.Bm25Config(language=language))


def _to_vec(sv: qe.SparseVector) -> SparseVec:
    return SparseVec(indices=list(sv.indices), values=[float(v) for v in sv.values])


class SparseEncoder:
    """BM25 encoder; pass `language` (a code such as "ru") to pin one, otherwise it is detected
    per text (core/ai/language.py)."""

    def __init__(self, language: str | None = None) -> None:
        if language is not None and language not in STEMMERS:
            raise ValueError(f"unsupported language {language!r}; supported: {', '.join(STEMMERS)}")
        self.language = language

    def _lang(self, text: str) -> str:
        return STEMMERS[self.language or detect_language(text)]

    def encode_document(self, text: str) -> SparseVec:
        return _to_vec(_model(self._lang(text)).embed_document(text))

    def encode_documents(self, texts: list[str]) -> list[SparseVec]:
        return [self.encode_document(t) for t in texts]

    def encode_query(self, text: str) -> SparseVec:
        return _to_vec(_model(self._lang(text)).embed_query(text))
