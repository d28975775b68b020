"""Keyword (BM25) sparse vectors with a Snowball stemmer per language.

Qdrant's own BM25 (from `qdrant_edge`, in-process, no data files) turns text into hashed term
ids with term-frequency weights; the store applies IDF (`Modifier.Idf`). Documents and queries go
through the same tokenizer, stopwords and stemmer for their language, so the same word form gives
the same index on both sides, and the resulting `SparseVec` works with either store.
"""

from __future__ import annotations

import re
from functools import lru_cache

import qdrant_edge as qe

from core.storage.vectors.base import SparseVec

LANGUAGES = ("russian", "english", "spanish", "portuguese")
DEFAULT_LANGUAGE = "english"

_CYRILLIC = re.compile(r"[А-Яа-яЁё]")
_LATIN = re.compile(r"[A-Za-zÀ-ÿ]")
_WORD = re.compile(r"[a-zà-ÿ]+")
# A few very frequent function words that tell the Latin-script languages apart.
_MARKERS = {
    "english": {"the", "and", "of", "to", "is", "are", "what", "how", "with", "for", "in", "does", "do"},
    "spanish": {"el", "la", "los", "las", "y", "es", "que", "del", "por", "con", "una", "cómo", "qué", "está"},
    "portuguese": {"o", "os", "as", "e", "é", "que", "do", "da", "dos", "não", "com", "uma", "como", "está", "você"},
}


def detect_language(text: str) -> str:
    """Snowball language for `text`: Cyrillic -> russian; Latin script -> the language whose
    function words occur most (english when nothing decides)."""
    cyr = len(_CYRILLIC.findall(text))
    lat = len(_LATIN.findall(text))
    if cyr and cyr >= lat * 0.5:
        return "russian"
    words = _WORD.findall(text.lower())
    scores = {lang: sum(w in markers for w in words) for lang, markers in _MARKERS.items()}
    best = max(scores, key=lambda lang: scores[lang])
    # Spanish/Portuguese share "que"; "en" alone is not enough to leave English.
    return best if scores[best] > scores["english"] else DEFAULT_LANGUAGE


@lru_cache(maxsize=len(LANGUAGES))
def _model(language: str) -> qe.Bm25:
    return qe.Bm25(qe.Bm25Config(language=language))


def _to_vec(sv: qe.SparseVector) -> SparseVec:
    return SparseVec(indices=list(sv.indices), values=[float(v) for v in sv.values])


class SparseEncoder:
    """BM25 encoder; pass `language` to pin one, otherwise it is detected per text."""

    def __init__(self, language: str | None = None) -> None:
        if language is not None and language not in LANGUAGES:
            raise ValueError(f"unsupported language {language!r}; supported: {', '.join(LANGUAGES)}")
        self.language = language

    def _lang(self, text: str) -> str:
        return self.language or detect_language(text)

    def encode_document(self, text: str) -> SparseVec:
        return _to_vec(_model(self._lang(text)).embed_document(text))

    def encode_documents(self, texts: list[str]) -> list[SparseVec]:
        return [self.encode_document(t) for t in texts]

    def encode_query(self, text: str) -> SparseVec:
        return _to_vec(_model(self._lang(text)).embed_query(text))
