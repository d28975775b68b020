"""DOCX: paragraphs under their headings (with levels) and tables as "header: value" rows."""

from __future__ import annotations

import io
import re
import zipfile

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from core.ai.errors import ExtractionError
from core.ai.ingest.clean import clean_heading, clean_text
from core.ai.ingest.extract.base import Section, SectionBuilder

_LEVEL = re.compile(r"(\d+)")
_HEADING_STYLES = ("heading", "заголовок", "title", "название")


def _heading_level(paragraph: Paragraph) -> int | None:
    name = (paragraph.style.name if paragraph.style is not None else "") or ""
    lowered = name.lower()
    if lowered.startswith(_HEADING_STYLES):
        if lowered.startswith(("title", "название")):
            return 0
        match = _LEVEL.search(name)
        return int(match.group(1)) if match else 1
    # Documents often mark headings only with an outline level in the paragraph properties.
    ppr = paragraph._p.pPr
    if ppr is not None:
        lvl = ppr.find("{http://schemas.openxmlformats.org/wordprocessingml/2006/main}outlineLvl")
        if lvl is not None:
            value = lvl.get("{http://schemas.openxmlformats.org/wordprocessingml/2006/main}val")
            if value is not None and value.isdigit() and int(value) < 9:
                return int(value) + 1
    return None


def _row_cells(row) -> list[str]:
    cells: list[str] = []
    for cell in row.cells:
        text = " ".join(clean_text(cell.text).split())
        if not cells or cells[-1] != text:  # merged cells repeat their text
            cells.append(text)
    return cells


def table_rows(table: Table) -> list[str]:
    """First row as the header; each later row as "Header: value; Header2: value"."""
    rows = [_row_cells(r) for r in table.rows]
    rows = [r for r in rows if any(r)]
    if not rows:
        return []
    header, body = rows[0], rows[1:]
    if not body or len(header) < 2:
        return ["; ".join(c for c in r if c) for r in rows]
    out = []
    for r in body:
        pairs = [f"{h}: {v}" if h else v for h, v in zip(header, r, strict=False) if v]
        pairs += [v for v in r[len(header):] if v]
        if pairs:
            out.append("; ".join(pairs))
    return out


def extract_docx(data: bytes, title: str) -> list[Section]:
    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ExtractionError(f"the DOCX file is damaged or not a DOCX ({exc})") from None
    builder = SectionBuilder([title] if title else [])
    for element in document.element.body.iterchildren():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(element, document)
            text = clean_text(paragraph.text)
            if not text:
                continue
            level = _heading_level(paragraph)
            if level is not None and len(text) <= 200:
                builder.heading(level, clean_heading(text))
            else:
                builder.paragraph(text)
        elif tag == "tbl":
            for line in table_rows(Table(element, document)):
                builder.paragraph(line)
    sections = builder.build()
    if not sections:
        raise ExtractionError("the DOCX document contains no text")
    return sections
