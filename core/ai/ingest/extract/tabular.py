"""CSV/XLSX price lists and catalogues: one row = one retrievable unit, with its header names.

A row becomes "Header: value; Header2: value" so the unit still says what each value is when
it is retrieved alone; its header and values also travel with it, for the column roles
(`core.ai.ingest.columns`: what is embedded, keyword-indexed or only shown). In spreadsheets,
the header is the first row with several filled cells; a later row with a single filled cell is
taken as a category line and becomes the heading path of the rows under it (price lists are
laid out that way).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable

from core.ai.errors import ExtractionError
from core.ai.ingest.extract.base import Section
from core.ai.ingest.extract.text import decode_text


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return " ".join(str(value).split())


def _row_text(header: list[str], row: list[str]) -> str:
    return "; ".join(f"{h}: {v}" if h else v for h, v in zip(header, row, strict=False) if v and v != "-")


def rows_to_sections(rows: Iterable[list[str]], root: list[str], max_rows: int) -> list[Section]:
    header: list[str] | None = None
    category: list[str] = []
    sections: list[Section] = []
    for number, raw in enumerate(rows, start=1):
        row = [_cell(v) for v in raw]
        filled = [v for v in row if v]
        if header is None:
            if len(filled) >= 2:
                header = row
            continue
        if not filled:
            continue
        if len(filled) == 1 and len(row) > 2 and not row[0].isdigit():
            category = [filled[0]]
            continue
        text = _row_text(header, row)
        if text:
            # The header list is one object shared by every row (pickled once on its way out of
            # the parser's process); `core.ai.ingest.columns` turns both into cells with roles.
            values = [v if v != "-" else "" for v in row]
            sections.append(Section(text, root + category, atomic=True,
                                    metadata={"row": number, "header": header, "values": values},
                                    sentence_vectors=False))
            if len(sections) > max_rows:
                raise ExtractionError(f"the table has more than {max_rows} rows", limit=max_rows)
    if header is None or not sections:
        raise ExtractionError("no table with a header row and data rows was found")
    return sections


def extract_csv(data: bytes, title: str, max_rows: int) -> list[Section]:
    text = decode_text(data)
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    return rows_to_sections(csv.reader(io.StringIO(text), dialect), [title] if title else [], max_rows)


def extract_xlsx(data: bytes, title: str, max_rows: int) -> list[Section]:
    import openpyxl  # noqa: PLC0415 - XLSX only; openpyxl is slow to import

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ExtractionError(f"the spreadsheet is damaged or not an XLSX file ({exc})") from None
    sections: list[Section] = []
    try:
        for sheet in workbook.worksheets:
            root = [title] + ([sheet.title] if len(workbook.worksheets) > 1 else [])
            try:
                sections += rows_to_sections(sheet.iter_rows(values_only=True), root, max_rows)
            except ExtractionError:
                if len(workbook.worksheets) == 1:
                    raise
    finally:
        workbook.close()
    if not sections:
        raise ExtractionError("no sheet has a header row and data rows")
    return sections
