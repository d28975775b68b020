"""Token-aware chunking with overlap; each chunk carries its section's heading path.

Paragraphs and sentences are packed into chunks of at most `chunk_tokens` (cl100k tokens); a
new chunk starts with the last sentences of the previous one, up to `overlap_tokens`, so a fact
split across a boundary is still whole in one chunk. Atomic sections (a FAQ pair) become exactly
one chunk unless they are longer than the limit; a table row is always one chunk, however long
(row-aware answers rely on a chunk being one whole row).

A table row's chunk carries its cells with their roles (`core.ai.ingest.columns`): only the
embedded cells are embedded, embedded and keyword-only cells are keyword-indexed, and the chunk's
text stays the whole row.

A chunk of several sentences also gets one vector per sentence (`part_texts`): a factoid
question usually targets one sentence, whose own vector matches it better than the vector of
the whole chunk does (see `core.ai.retrieval.hybrid`).
"""

from __future__ import annotations

import re

from core.ai.ingest.columns import EMBED_KEY, KEYWORD_KEY
from core.ai.ingest.extract.base import Section
from core.ai.tokens import count_tokens, decode, encode
from core.ai.types import Chunk

_SENTENCE_END = re.compile(r"(?<=[.!?…;:])\s+(?=[\"«(\[A-ZА-ЯЁ0-9¿¡-])")
# Parts end at prose sentence ends only: "Цена: 70 руб.; Автор: ..." is one fact, not three.
_PROSE_END = re.compile(r"(?<=[.!?…])\s+(?=[\"«(\[A-ZА-ЯЁ0-9¿¡-])")
# A shorter sentence ("Yes.", a numbered item) joins its neighbour instead of getting a vector.
MIN_PART_TOKENS = 8


def _sentences(paragraph: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(paragraph) if s.strip()]


def _hard_split(text: str, limit: int) -> list[str]:
    """A single sentence longer than the limit (tables flattened to one line, lists without
    punctuation): cut on token boundaries."""
    tokens = encode(text)
    return [decode(tokens[i:i + limit]).strip() for i in range(0, len(tokens), limit)]


def _units(text: str, limit: int) -> list[tuple[str, int, bool]]:
    """(piece, tokens, starts_paragraph) in order; every piece fits the limit."""
    out: list[tuple[str, int, bool]] = []
    for paragraph in text.split("\n\n"):
        first = True
        for sentence in _sentences(paragraph.strip()):
            n = count_tokens(sentence)
            pieces = [sentence] if n <= limit else _hard_split(sentence, limit)
            for piece in pieces:
                out.append((piece, n if len(pieces) == 1 else count_tokens(piece), first))
                first = False
    return out


def split_text(text: str, chunk_tokens: int, overlap_tokens: int) -> list[str]:
    if count_tokens(text) <= chunk_tokens:
        return [text.strip()] if text.strip() else []
    units = _units(text, chunk_tokens)
    chunks: list[str] = []
    current: list[tuple[str, int, bool]] = []
    size = 0
    fresh = 0  # units in `current` that are not overlap from the previous chunk
    for unit in units:
        if current and size + unit[1] > chunk_tokens and fresh:
            chunks.append(_join(current))
            carry: list[tuple[str, int, bool]] = []
            carried = 0
            for prev in reversed(current):
                if carried + prev[1] > overlap_tokens or carried + prev[1] + unit[1] > chunk_tokens:
                    break
                carry.insert(0, prev)
                carried += prev[1]
            current, size, fresh = carry, carried, 0
        current.append(unit)
        size += unit[1]
        fresh += 1
    if current and fresh:
        chunks.append(_join(current))
    return chunks


def _join(units: list[tuple[str, int, bool]]) -> str:
    text = ""
    for i, (piece, _n, starts_paragraph) in enumerate(units):
        text += piece if i == 0 else ("\n\n" if starts_paragraph else " ") + piece
    return text.strip()


def split_sections(sections: list[Section], chunk_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """Chunks numbered in document order; the heading path and section metadata are kept."""
    chunks: list[Chunk] = []
    for section in sections:
        if is_table_row(section.metadata) or (section.atomic and count_tokens(section.text) <= chunk_tokens):
            pieces = [section.text.strip()]
        else:
            # Room for the heading prefix added at embedding time.
            budget = max(32, chunk_tokens - count_tokens(" > ".join(section.heading_path)))
            pieces = split_text(section.text, budget, min(overlap_tokens, budget // 2))
        for piece in pieces:
            if piece:
                chunks.append(Chunk(text=piece, index=len(chunks), heading_path=list(section.heading_path),
                                    metadata=dict(section.metadata), sentence_vectors=section.sentence_vectors))
    return chunks


def _context(chunk: Chunk, source_title: str) -> str:
    context = [p for p in ([source_title] if source_title else []) + chunk.heading_path if p]
    # Do not repeat the title when it is also the first heading.
    deduped = [p for i, p in enumerate(context) if i == 0 or p != context[i - 1]]
    return " > ".join(deduped) + "\n" if deduped else ""


def is_table_row(metadata: dict) -> bool:
    return "cells" in metadata or "header" in metadata


def _row_context(chunk: Chunk) -> str:
    # Category lines and the sheet name say what kind of item a row is; the file's name (the
    # first heading, the same for every row) does not.
    path = [p for p in chunk.heading_path[1:] if p]
    return " > ".join(path) + "\n" if path else ""


def embedding_text(chunk: Chunk, source_title: str = "") -> str:
    """The text that is embedded: the chunk with its context (document title and heading path)
    in front, so a bare paragraph still says what it is about; of a table row, its embedded
    cells under its category."""
    if chunk.metadata.get(EMBED_KEY):
        return _row_context(chunk) + chunk.metadata[EMBED_KEY]
    return _context(chunk, source_title) + chunk.text


def keyword_index_text(chunk: Chunk, source_title: str = "") -> str:
    """The text that is keyword-indexed: as embedded, plus a table row's keyword-only cells
    (codes, numbers)."""
    if chunk.metadata.get(KEYWORD_KEY):
        return _row_context(chunk) + chunk.metadata[KEYWORD_KEY]
    return _context(chunk, source_title) + chunk.text


def chunk_parts(chunk: Chunk) -> list[str]:
    """The sentences of a chunk that get vectors of their own: none for a chunk of one sentence
    (its whole-chunk vector is that sentence) or one that opted out (table rows)."""
    if not chunk.sentence_vectors:
        return []
    sentences = [s.strip() for line in chunk.text.split("\n") for s in _PROSE_END.split(line.strip()) if s.strip()]
    parts: list[str] = []
    for sentence in sentences:
        if parts and count_tokens(parts[-1]) < MIN_PART_TOKENS:
            parts[-1] += " " + sentence
        else:
            parts.append(sentence)
    if len(parts) > 1 and count_tokens(parts[-1]) < MIN_PART_TOKENS:
        last = parts.pop()
        parts[-1] += " " + last
    return parts if len(parts) > 1 else []


def part_texts(chunk: Chunk, source_title: str = "") -> list[str]:
    """What is embedded for each part: the sentence behind the same context as the chunk (a
    bare sentence of an FAQ answer says little without its question heading)."""
    context = _context(chunk, source_title)
    return [context + part for part in chunk_parts(chunk)]
