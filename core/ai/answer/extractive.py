"""No-LLM mode: answer with the best knowledge extracts, phrased as an excerpt, or hand off.

Prose: the sentences of the best chunks that share the most word stems with the question, kept
in document order and cut at sentence boundaries within a length limit.

Table rows (one row per chunk from tabular ingestion) are read from the cells ingestion stored
with their column kinds (`meta["cells"]`), or, for chunks without them, parsed from their
"Header: value; ..." text and given roles by header and value shape: the name, the price,
links, internal codes, attributes. A shown row is its name, the price with its currency, and a few short
attributes: the price can never be pushed out by a long URL column, and links and codes are
shown only when the question asks for them. A row without a name (a fragment) is never shown
alone. When the next row scores close to the best one (two similar items), both are shown,
briefly, each with its price. The same rendering (`row_unit`) is what the LLM's context gets.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from core.ai.answer.phrases import phrase
from core.ai.types import RetrievalResult, RetrievedChunk

MAX_CHARS = 700
SECOND_CHUNK_RATIO = 0.85  # a second prose extract only when it is nearly as relevant as the best
# A second row is shown when its fused score is within this margin of the best row's (fused
# scores are sums of z-scores, so a difference, not a ratio, compares them), or when both
# match the question's words equally well. Tuned on the evaluation's tuning half.
CLOSE_ROW_MARGIN = 0.35
MAX_ROWS = 2
MAX_ATTRIBUTES = 3
MAX_ATTRIBUTE_CHARS = 60
_SENTENCE = re.compile(r"(?<=[.!?…])\s+(?=[\"«(\[A-ZА-ЯЁ0-9¿¡])|\n+")
_WORD = re.compile(r"\w+", re.U)
_PAIR = re.compile(r"^\s*[^:;|]{1,60}:\s*[^;|]+$")
_URL = re.compile(r"^(https?://|www\.)\S+$", re.I)
_NAME_HEADER = re.compile(r"наименован|название|товар|продукт|модель|product|name|item|title|producto|nombre|"
                          r"artículo|produto|nome", re.I)
_PRICE_HEADER = re.compile(r"цен|стоимост|price|cost|precio|preço|tarif|прайс", re.I)
_LINK_HEADER = re.compile(r"ссылк|страниц|сайт|url|link|page|web|enlace|página|imagen|фото|photo|image", re.I)
_CODE_HEADER = re.compile(r"код|артикул|sku|code|^id$|\bid\b|barcode|штрих|ean|código|codigo|referencia|ref\b", re.I)
_SKIP_HEADER = re.compile(r"category_path|путь|заказ$|^order$", re.I)
_CURRENCY = re.compile(r"(руб(?:лей|ля|ль)?\.?|₽|р\.|rub|eur|€|euros?|usd|\$|долл\w*|евро|тенге|₸|грн|uah|"
                       r"pesos?|mxn|ars)", re.I)
_HEADER_CURRENCY = re.compile(r"\(([^)]+)\)|,\s*([^,]+)$")
_ASKS_LINK = re.compile(r"ссылк|сайт|страниц|url|link|page|website|enlace|página|web", re.I)
_ASKS_CODE = re.compile(r"артикул|код|sku|\bcode\b|código|referencia|номер товара", re.I)


@dataclass
class ExtractiveAnswer:
    text: str
    used: list[RetrievedChunk] = field(default_factory=list)
    handoff: bool = False


@dataclass
class Row:
    """One table row's cells by role."""

    name: str = ""
    price: str = ""  # with its currency when the table states one
    links: list[tuple[str, str]] = field(default_factory=list)
    codes: list[tuple[str, str]] = field(default_factory=list)
    attributes: list[tuple[str, str]] = field(default_factory=list)

    def render(self, *, links: bool = False, codes: bool = False, attributes: int = MAX_ATTRIBUTES) -> str:
        head = self.name or "?"
        if self.price:
            head += f" — {self.price}"
        extra = [f"{h}: {v}" for h, v in self.attributes[:attributes]]
        if codes:
            extra = [f"{h}: {v}" for h, v in self.codes] + extra
        if links:
            extra += [v for _, v in self.links]
        return head + (f" ({'; '.join(extra)})" if extra else "")


def fold(text: str) -> str:
    """Lower case without accents (sofá -> sofa, ё -> е), for matching across spellings."""
    text = unicodedata.normalize("NFKD", text.lower().replace("ё", "е").replace("й", "и"))
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def stems(text: str) -> set[str]:
    # A 5-letter prefix is a crude stemmer that works for ru/es/pt inflection and English alike.
    return {w[:5] for w in _WORD.findall(fold(text)) if len(w) >= 3 or w.isdigit()}


def is_row(line: str) -> bool:
    parts = [p for p in re.split(r";|\s\|\s", line) if p.strip()]
    return len(parts) >= 2 and sum(bool(_PAIR.match(p)) for p in parts) >= 2


def _cells(line: str) -> list[tuple[str, str]]:
    cells = []
    for part in re.split(r";\s|\s\|\s", line):
        header, sep, value = part.partition(":")
        if sep and len(header) <= 60 and not header.strip().lower().startswith(("http", "www")):
            cells.append((header.strip(), value.strip()))
        elif cells:  # a value with its own "; " (or a URL's colon) continues the previous cell
            h, v = cells[-1]
            cells[-1] = (h, f"{v}; {part.strip()}" if not sep else f"{v}{part}")
        elif part.strip():
            cells.append(("", part.strip()))
    return [(h, v.rstrip(";").strip()) for h, v in cells if v.strip()]


def _header_currency(header: str) -> str:
    m = _HEADER_CURRENCY.search(header)
    if not m:
        return ""
    text = (m.group(1) or m.group(2) or "").strip()
    return text if _CURRENCY.search(text) else ""


def _with_currency(header: str, value: str) -> str:
    if _CURRENCY.search(value):
        return value
    currency = _header_currency(header)
    return f"{value} {currency}" if currency else value


def parse_row(line: str) -> Row:
    row = Row()
    for header, value in _cells(line):
        if _URL.match(value) or (_LINK_HEADER.search(header) and "://" in value):
            row.links.append((header, value))
        elif _PRICE_HEADER.search(header) and not row.price and re.search(r"\d", value):
            row.price = _with_currency(header, value)
        elif _NAME_HEADER.search(header) and not _CODE_HEADER.search(header) and not row.name:
            row.name = value
        elif _CODE_HEADER.search(header):
            row.codes.append((header, value))
        elif _SKIP_HEADER.search(header) or value in {"-", "0"}:
            continue
        elif len(value) <= MAX_ATTRIBUTE_CHARS:
            row.attributes.append((header, value))
    if not row.name:  # no named column: the longest wordy cell that is not a link, code or price
        words = [(h, v) for h, v in row.attributes if re.search(r"[^\W\d_]{3}\w*\s+\S*[^\W\d_]{2}", v)]
        if words:
            best = max(words, key=lambda hv: len(hv[1]))
            row.name = best[1]
            row.attributes.remove(best)
    return row


_CELL_KINDS = {"name", "price", "url", "code", "category", "attribute", "stock", "number"}


def row_from_cells(cells: list[dict]) -> Row:
    """A row from the cells tabular ingestion stored with their column kinds (`meta["cells"]`):
    the ingestion's reading of the columns wins over guessing from the text."""
    row = Row()
    for cell in cells:
        header, value, kind = str(cell.get("header", "")), str(cell.get("value", "")).strip(), cell.get("kind")
        if not value or value == "-":
            continue
        if kind == "name" and not row.name:
            row.name = value
        elif kind == "price" and not row.price and re.search(r"\d", value):
            row.price = _with_currency(header, value)
        elif kind == "url" or _URL.match(value):
            row.links.append((header, value))
        elif kind == "code":
            row.codes.append((header, value))
        elif kind in _CELL_KINDS and kind != "category" and len(value) <= MAX_ATTRIBUTE_CHARS:
            row.attributes.append((header, value))
    if not row.name or not row.price:  # kinds missing (another ingestion version): read the text way
        parsed = parse_row("; ".join(f"{c.get('header', '')}: {c.get('value', '')}" for c in cells))
        row.name, row.price = row.name or parsed.name, row.price or parsed.price
    return row


def _chunk_rows(chunk: RetrievedChunk) -> list[Row]:
    cells = chunk.metadata.get("cells") if isinstance(chunk.metadata, dict) else None
    if cells and isinstance(cells, list):
        return [row_from_cells([c for c in cells if isinstance(c, dict)])]
    return [parse_row(line) for line in _row_lines(chunk)]


def row_unit(line: str, question: str = "", *, attributes: int = MAX_ATTRIBUTES) -> str:
    """A row as a customer (or the LLM) should see it: name, price, a few attributes; links and
    codes only when the question asks for them."""
    return parse_row(line).render(links=bool(_ASKS_LINK.search(question)), codes=bool(_ASKS_CODE.search(question)),
                                  attributes=attributes)


def _units(text: str) -> list[str]:
    """Rows stay whole; prose is split into sentences."""
    units: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        units.extend([line.strip()] if is_row(line) else [s.strip() for s in _SENTENCE.split(line) if s.strip()])
    return units


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "), cut.rfind("\n"))
    return (cut[: end + 1] if end > limit // 3 else cut.rsplit(" ", 1)[0]).rstrip() + " …"


def _row_lines(chunk: RetrievedChunk) -> list[str]:
    return [u for u in _units(chunk.text) if is_row(u)]


def is_table_chunk(chunk: RetrievedChunk) -> bool:
    if isinstance(chunk.metadata, dict) and chunk.metadata.get("cells"):
        return True
    units = _units(chunk.text)
    return bool(units) and sum(is_row(u) for u in units) > len(units) // 2


def _match(question: str, row: Row) -> int:
    return len(stems(question) & stems(f"{row.name} {' '.join(v for _, v in row.attributes + row.codes)}"))


def excerpt(question: str, chunk: RetrievedChunk, limit: int = MAX_CHARS) -> str:
    """The most relevant part of `chunk` for `question`, at most about `limit` characters."""
    units = _units(chunk.text)
    if not units:
        return ""
    if is_table_chunk(chunk):  # the matching named rows, best first, each whole
        rows = [r for r in _chunk_rows(chunk) if r.name]
        if not rows:
            return ""
        order = sorted(range(len(rows)), key=lambda i: (-_match(question, rows[i]), i))
        picked = [i for i in order if _match(question, rows[i]) > 0][:3] or order[:1]
        links, codes = bool(_ASKS_LINK.search(question)), bool(_ASKS_CODE.search(question))
        return "\n".join("• " + rows[i].render(links=links, codes=codes) for i in picked)
    wanted = stems(question)
    scores = [len(wanted & stems(u)) for u in units]
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
    return _cut(" ".join(units[i] for i in picked), limit)


def knowledge_text(chunk: RetrievedChunk, question: str = "") -> str:
    """A chunk as the LLM's context gets it: table rows as row units with more attributes."""
    if not is_table_chunk(chunk):
        return chunk.text
    links, codes = bool(_ASKS_LINK.search(question)), bool(_ASKS_CODE.search(question))
    rows = [r for r in _chunk_rows(chunk) if r.name]
    return "\n".join(r.render(links=links, codes=codes, attributes=8) for r in rows) or chunk.text


def _label(chunk: RetrievedChunk) -> str:
    return f"{chunk.source_title} — {chunk.heading}" if chunk.heading else chunk.source_title


def _close_rows(question: str, chunks: list[RetrievedChunk]) -> list[RetrievedChunk]:
    """The best row chunk and, when another row is about as good, that one too."""
    named = [c for c in chunks if is_table_chunk(c) and any(r.name for r in _chunk_rows(c))]
    if not named:
        return []
    best = named[0]
    picked = [best]
    best_match = max(_match(question, r) for r in _chunk_rows(best))
    for other in named[1:MAX_ROWS + 2]:
        if len(picked) >= MAX_ROWS or other.text.strip() == best.text.strip():
            continue
        match = max(_match(question, r) for r in _chunk_rows(other))
        if match > best_match:
            continue  # the ranking preferred the less matching row: only the first is trusted
        if best.score - other.score <= CLOSE_ROW_MARGIN and match >= best_match:
            picked.append(other)
    return picked


def _rows_first(question: str, chunks: list[RetrievedChunk], top: int = 3) -> list[RetrievedChunk]:
    """For a product question: the rows among the top chunks that name what was asked, best
    match first, before prose (a delivery page ranked first must not answer "how much is X"
    when X's row is right behind it)."""
    def match(c: RetrievedChunk) -> int:
        return max((_match(question, r) for r in _chunk_rows(c) if r.name), default=0)
    rows = [c for c in chunks[:top] if is_table_chunk(c) and match(c) > 0]
    if not rows or rows[0] is chunks[0]:
        return chunks
    rows.sort(key=lambda c: -match(c))  # stable: retrieval order among equal matches
    return [*rows, *(c for c in chunks if not any(c is r for r in rows))]


def extractive_answer(question: str, result: RetrievalResult, language: str,
                      max_chars: int = MAX_CHARS, *, product: bool = False) -> ExtractiveAnswer:
    """`product`: the question asks for an item (price, availability), so rows go first."""
    if result.nothing_relevant or not result.chunks:
        return ExtractiveAnswer(text=phrase("nothing_found", language), handoff=True)
    if product:
        result = RetrievalResult(_rows_first(question, result.chunks), False, result.best_dense, result.verdict)
    best = result.chunks[0]
    if is_table_chunk(best):
        used = _close_rows(question, result.chunks)
        if not used:
            return ExtractiveAnswer(text=phrase("nothing_found", language), handoff=True)
        parts = [(c, excerpt(question, c, max_chars // len(used))) for c in used]
    else:
        used = [best]
        for other in result.chunks[1:]:
            if (other.score >= best.score * SECOND_CHUNK_RATIO and other.text.strip() != best.text.strip()
                    and not is_table_chunk(other)):
                used.append(other)
                break
        parts = [(c, excerpt(question, c, max_chars // len(used))) for c in used]
    parts = [(c, t) for c, t in parts if t]
    if not parts:
        return ExtractiveAnswer(text=phrase("nothing_found", language), handoff=True)
    body = "\n".join(t for _, t in parts) if all(t.startswith("•") for _, t in parts) else \
        "\n\n".join(t if t.startswith("•") else f"«{t}»" for _, t in parts)
    labels = list(dict.fromkeys(_label(c) for c, _ in parts))
    key = "source" if len(labels) == 1 else "sources"
    text = (f"{phrase('found_one', language)}\n\n{body}\n\n"
            f"{phrase(key, language)}: {'; '.join(labels)}.\n{phrase('outro', language)}")
    return ExtractiveAnswer(text=text, used=[c for c, _ in parts])
