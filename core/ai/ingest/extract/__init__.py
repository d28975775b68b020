"""Extraction: bytes of a supported file type -> sections of text with heading paths."""

from __future__ import annotations

from pathlib import PurePath

from core.ai.errors import ExtractionError
from core.ai.ingest.extract.base import Section
from core.config import KnowledgeSettings

SUPPORTED = {
    ".pdf": "PDF", ".docx": "DOCX", ".txt": "TXT", ".md": "Markdown", ".markdown": "Markdown",
    ".html": "HTML", ".htm": "HTML", ".csv": "CSV", ".xlsx": "XLSX",
}
SUPPORTED_TEXT = "PDF, DOCX, TXT, Markdown, HTML, CSV, XLSX, web links (URL) and FAQ pairs"
MAX_TABLE_ROWS = 50_000

__all__ = ["ExtractionError", "Section", "SUPPORTED", "SUPPORTED_TEXT", "check_upload", "extract_file"]


def check_upload(filename: str, size: int, settings: KnowledgeSettings) -> str:
    """The file's extension if it may be ingested; a clear refusal otherwise."""
    ext = PurePath(filename.lower()).suffix
    if ext in (".doc", ".rtf", ".odt", ".xls", ".pptx", ".ppt"):
        raise ExtractionError(f"{ext} files are not supported; save it as DOCX or PDF. Supported: {SUPPORTED_TEXT}",
                              ext=ext)
    if ext not in SUPPORTED:
        raise ExtractionError(f"unsupported file type {ext or '(none)'}. Supported: {SUPPORTED_TEXT}", ext=ext)
    if size == 0:
        raise ExtractionError("the file is empty")
    if size > settings.max_file_bytes:
        raise ExtractionError(f"the file is {size / 1e6:.2f} MB; the limit is {settings.max_file_bytes / 1e6:g} MB "
                              "(KNOWLEDGE_MAX_FILE_BYTES)",
                              limit=settings.max_file_bytes)
    return ext


def extract_file(filename: str, data: bytes, settings: KnowledgeSettings, title: str = "") -> list[Section]:
    """Sections of a file. CPU-bound: call it from a worker thread."""
    ext = check_upload(filename, len(data), settings)
    title = title or PurePath(filename).stem
    if ext == ".pdf":
        from core.ai.ingest.extract.pdf import extract_pdf  # noqa: PLC0415 - each parser loads with its format

        return extract_pdf(data, settings.max_pages)
    if ext == ".docx":
        from core.ai.ingest.extract.docx import extract_docx  # noqa: PLC0415 - each parser loads with its format

        return extract_docx(data, title)
    if ext in (".txt", ".md", ".markdown"):
        from core.ai.ingest.extract.text import extract_text  # noqa: PLC0415 - each parser loads with its format

        return extract_text(data, title, markdown=ext != ".txt")
    if ext in (".html", ".htm"):
        from core.ai.ingest.extract.html import extract_html  # noqa: PLC0415 - each parser loads with its format

        return extract_html(data, title)
    from core.ai.ingest.extract.tabular import extract_csv, extract_xlsx  # noqa: PLC0415 - each parser loads with its format

    return (extract_csv if ext == ".csv" else extract_xlsx)(data, title, MAX_TABLE_ROWS)
