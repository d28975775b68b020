"""Column roles of tabular sources: what of a row is embedded, what only goes to the keyword
index, and what only to the payload.

A price-list row rendered whole ("Header: value; ...") is mostly what a customer never says:
the product page URL, item codes, the price, stock counts. The dense vector should hold what a
customer would say (the name, the kind of item, the attributes that describe it); codes are
what the keyword index is for (an exact code still finds its row); URLs, prices and stock are
only shown. The encoder's cost grows with tokens, so embedding less is also several times
faster (bench/ingest.py).

Roles are decided per column from its header name and its values (`plan_columns`); the
operator can override them per source (`knowledge add --embed-columns/--keyword-columns/
--skip-columns`, stored in the source's `options["columns"]`). Every row keeps its full text
(the payload's `text`: it answers the customer and carries the price), and its cells with their
roles in the payload's `meta["cells"]` (`{"header", "value", "role", "kind"}`), which is what
row-aware answers read (`core.ai.answer`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from core.ai.errors import ExtractionError
from core.ai.ingest.extract.base import Section

EMBED, KEYWORD, PAYLOAD = "embed", "keyword", "payload"
ROLES = (EMBED, KEYWORD, PAYLOAD)
# Kinds say why a column got its role (and what a row-aware answer may do with it).
NAME, CATEGORY, ATTRIBUTE, CODE, URL, PRICE, STOCK, NUMBER, EMPTY = (
    "name", "category", "attribute", "code", "url", "price", "stock", "number", "empty")
ALL = "*"  # `embed: ["*"]`: every column is embedded (the whole row, as before column roles)

_URL_VALUE = re.compile(r"^(https?://|www\.)\S+$", re.I)
_NUMBER_VALUE = re.compile(r"^[-+]?\d[\d\s.,]*(\s*[%a-zа-я.$€₽]{0,6})?$", re.I)
_PRICE_HEADER = re.compile(r"цен|стоимост|прайс|price|cost|precio|preço|preco|tarif|сумм|amount|руб|rub|usd|eur",
                           re.I)
_STOCK_HEADER = re.compile(r"остат|налич|склад|резерв|заказ|кол-?во|количеств|stock|qty|quantity|inventory|"
                           r"available|order|cantidad|existenc|inventario|estoque|pedido", re.I)
_CODE_HEADER = re.compile(r"код|артикул|штрих|sku|\bcode\b|^id$|\bid\b|ean|upc|gtin|barcode|isbn|^№|номер|"
                          r"part ?n|ref\b|referencia|código|codigo|art\.|art-?nr", re.I)
_URL_HEADER = re.compile(r"url|ссылк|link|страниц|сайт|page|enlace|imagen|image|фото|картин", re.I)
_NAME_HEADER = re.compile(r"наименован|назван|товар|продукт|name|product|title|item|nombre|producto|"
                          r"descrip|описан|модель|model", re.I)
_CATEGORY_HEADER = re.compile(r"категор|раздел|рубрик|групп|каталог|category|catalog|section|group|path|"
                              r"categoría|categoria|tipo|type|вид", re.I)
_LETTERS = re.compile(r"[^\W\d_]{2,}")
_PATH = " / "
_SHOUTED = re.compile(r"\b[^\W\d_a-zа-яё]*[^\W\d_a-zа-яё]{2}[^\W\d_a-zа-яё]*\b")
_YES_NO = {"да", "нет", "yes", "no", "sí", "si", "sim", "não", "+", "-"}
# Where a table row keeps its embedded and keyword texts on its way to the encoders (never stored).
EMBED_KEY, KEYWORD_KEY = "_embed", "_keyword"


@dataclass(frozen=True)
class Column:
    header: str
    role: str
    kind: str
    prefix: str = ""  # a leading path segment every value shares, left out of the embedded text

    def as_dict(self) -> dict[str, str]:
        return {"header": self.header, "role": self.role, "kind": self.kind}


@dataclass(frozen=True)
class ColumnOverrides:
    """The operator's choices for one source, by header name (case and spacing ignored)."""

    embed: tuple[str, ...] = ()
    keyword: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()  # payload only: neither embedded nor keyword-indexed

    @classmethod
    def of(cls, options: Any) -> ColumnOverrides:
        """From `source.options["columns"]`; refuses anything but lists of header names."""
        if not options:
            return cls()
        if not isinstance(options, dict) or set(options) - {EMBED, KEYWORD, "skip"}:
            raise ExtractionError("column overrides must name columns under embed, keyword or skip")
        lists = {}
        for key in (EMBED, KEYWORD, "skip"):
            names = options.get(key) or []
            if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
                raise ExtractionError(f"column overrides: {key} must be a list of column names")
            lists[key] = tuple(_norm(n) for n in names)
        taken: dict[str, str] = {}
        for key, names in lists.items():
            for name in names:
                if name in taken and taken[name] != key:
                    raise ExtractionError(f"column {name!r} is given both as {taken[name]} and as {key}")
                taken[name] = key
        return cls(lists[EMBED], lists[KEYWORD], lists["skip"])

    def as_options(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in ((EMBED, self.embed), (KEYWORD, self.keyword), ("skip", self.skip)) if v}

    def __bool__(self) -> bool:
        return bool(self.embed or self.keyword or self.skip)

    def role_of(self, header: str) -> str | None:
        name = _norm(header)
        if ALL in self.embed and name not in self.keyword and name not in self.skip:
            return EMBED
        if name in self.embed:
            return EMBED
        if name in self.keyword:
            return KEYWORD
        if name in self.skip:
            return PAYLOAD
        return None

    def check(self, headers: Iterable[str]) -> None:
        known = {_norm(h) for h in headers}
        unknown = [n for n in (*self.embed, *self.keyword, *self.skip) if n != ALL and n not in known]
        if unknown:
            raise ExtractionError(f"no column named {', '.join(repr(u) for u in unknown)}; the table's columns are: "
                                  f"{', '.join(h for h in headers if h)}", columns=list(headers))


def _norm(name: str) -> str:
    return " ".join(name.split()).casefold()


def _share(values: Sequence[str], test) -> float:
    return sum(1 for v in values if test(v)) / len(values) if values else 0.0


def _is_number(value: str) -> bool:
    return bool(_NUMBER_VALUE.match(value))


def _is_code(value: str) -> bool:
    # One token with a digit in it: "00000105438", "КЖ-740", "SK-524"; not "Папка А4".
    return " " not in value and any(ch.isdigit() for ch in value) and len(value) <= 40


def classify(header: str, values: Sequence[str]) -> Column:
    """The role of one column, from its header and its values ("" for an empty cell)."""
    filled = [v for v in values if v]
    if not filled:
        return Column(header, PAYLOAD, EMPTY)
    if _share(filled, lambda v: bool(_URL_VALUE.match(v))) >= 0.8:
        return Column(header, PAYLOAD, URL)
    numeric = _share(filled, _is_number)
    if _PRICE_HEADER.search(header) and numeric >= 0.8:
        return Column(header, PAYLOAD, PRICE)
    if _STOCK_HEADER.search(header) and (numeric >= 0.8 or len(set(filled)) <= 3):
        return Column(header, PAYLOAD, STOCK)
    if _URL_HEADER.search(header) and _share(filled, lambda v: "/" in v and " " not in v) >= 0.8:
        return Column(header, PAYLOAD, URL)
    distinct = len(set(filled)) / len(filled)
    code_like = _share(filled, _is_code)
    if (_CODE_HEADER.search(header) and code_like >= 0.6) or (distinct >= 0.9 and code_like >= 0.9 and len(filled) >= 20):
        return Column(header, KEYWORD, CODE)
    if numeric >= 0.9:
        return Column(header, KEYWORD, NUMBER)  # years, sizes, weights: exact words, not meaning
    if _share(filled, lambda v: bool(_LETTERS.search(v))) < 0.5:
        return Column(header, KEYWORD, CODE)  # mostly symbols and digits
    if _CATEGORY_HEADER.search(header):
        return Column(header, EMBED, CATEGORY)
    if len(filled) >= 20 and Counter(filled).most_common(1)[0][1] >= 0.9 * len(filled):
        return Column(header, KEYWORD, ATTRIBUTE)  # nearly every row says the same: it tells no row apart
    return Column(header, EMBED, ATTRIBUTE)


def plan_columns(headers: Sequence[str], rows: Sequence[Sequence[str]],
                 overrides: ColumnOverrides | None = None) -> list[Column]:
    """Roles of a table's columns. One wordy column is the item's name (by header, else the
    most varied and longest); something is always embedded (an all-numeric table embeds all)."""
    overrides = overrides or ColumnOverrides()
    overrides.check(headers)
    columns = [classify(h, [r[i] if i < len(r) else "" for r in rows]) for i, h in enumerate(headers)]
    wordy = [i for i, c in enumerate(columns) if c.role == EMBED]
    if wordy:
        named = [i for i in wordy if _NAME_HEADER.search(headers[i]) and not _CATEGORY_HEADER.search(headers[i])]

        def spread(i: int) -> float:
            values = [r[i] for r in rows if i < len(r) and r[i]]
            return len(set(values)) / max(1, len(values)) * sum(map(len, values)) / max(1, len(values))
        name = named[0] if named else max(wordy, key=spread)
        columns[name] = Column(headers[name], EMBED, NAME)
    out = []
    for i, c in enumerate(columns):
        role = overrides.role_of(c.header) or c.role
        prefix = _shared_prefix([r[i] for r in rows if i < len(r) and r[i]]) if role == EMBED else ""
        out.append(Column(c.header, role, c.kind, prefix))
    if not any(c.role == EMBED for c in out):
        # Nothing wordy (an all-numeric sheet, or every column skipped): embed what is not a link.
        out = [Column(c.header, EMBED, c.kind) if c.kind not in (URL, EMPTY) and overrides.role_of(c.header) is None
               else c for c in out]
    return out


def apply_column_roles(sections: list[Section], options: Any = None) -> tuple[list[Section], list[Column]]:
    """Give every table row (a section with `metadata["header"]` and `["values"]`, see
    `core.ai.ingest.extract.tabular`) its cells with roles; other sections pass unchanged.
    Returns the sections and the columns of the first table (what the source stores)."""
    overrides = ColumnOverrides.of(options)
    tables: dict[tuple[str, ...], list[Section]] = {}
    for s in sections:
        if "header" in s.metadata:
            tables.setdefault(tuple(s.metadata["header"]), []).append(s)
    if overrides and not tables:
        raise ExtractionError("column overrides apply to tables (CSV, XLSX), and this source has none")
    first: list[Column] = []
    for headers, rows in tables.items():
        plan = plan_columns(headers, [r.metadata["values"] for r in rows], overrides)
        first = first or plan
        whole = all(c.role == EMBED for c in plan)
        for row in rows:
            values = row.metadata.pop("values")
            row.metadata.pop("header")
            filled = [(c, v) for c, v in zip(plan, values, strict=False) if v]
            row.metadata["cells"] = [{"header": c.header, "value": v, "role": c.role, "kind": c.kind} for c, v in filled]
            if not whole:  # every column embedded: the whole row, as before column roles
                row.metadata[EMBED_KEY] = embedded_text(filled)
                row.metadata[KEYWORD_KEY] = keyword_text(filled)
    return sections, first


def _shared_prefix(values: Sequence[str]) -> str:
    """"КАНЦЕЛЯРСКИЕ ТОВАРЫ / " when (nearly) every value of a path column starts with it."""
    heads = Counter(v.split(_PATH, 1)[0] + _PATH for v in values if _PATH in v)
    if not heads:
        return ""
    head, count = heads.most_common(1)[0]
    return head if count >= 0.95 * len(values) else ""


def _calm(text: str) -> str:
    """Shouted words ("СУМКА ПОЯСНАЯ АССОРТИ") in lower case: the encoder's tokenizer cuts
    upper-case words into many more pieces, and customers do not type that way."""
    return _SHOUTED.sub(lambda m: m.group(0).lower(), text)


def _bare(value: str) -> bool:
    # A value that says what it is without its header (not "Да", "XL", "12").
    return len(value) > 3 and bool(_LETTERS.search(value)) and value.casefold() not in _YES_NO


def embedded_text(cells: list[tuple[Column, str]]) -> str:
    """What the dense encoder gets of a row: the name, then the other embedded values (with their
    header only where a value alone would not say what it is), shared path prefixes left out."""
    chosen = sorted(((c, v) for c, v in cells if c.role == EMBED), key=lambda cv: cv[0].kind != NAME)
    parts = []
    for c, v in chosen:
        v = _calm(v.removeprefix(c.prefix) if c.prefix and v != c.prefix else v)
        parts.append(v if c.kind == NAME or _bare(v) or not c.header else f"{c.header}: {v}")
    return "; ".join(parts)


def keyword_text(cells: list[tuple[Column, str]]) -> str:
    """What the keyword index gets of a row: embedded and keyword-only cells, with headers."""
    return "; ".join(v if not c.header else f"{c.header}: {v}" for c, v in cells if c.role in (EMBED, KEYWORD))
