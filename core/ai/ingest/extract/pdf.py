"""PDF: the text layer, page by page (pypdf). Scanned PDFs have none and are refused clearly."""

from __future__ import annotations

import io
import logging
import warnings

from pypdf import PdfReader
from pypdf.errors import PdfReadError, PyPdfError

from core.ai.errors import ExtractionError
from core.ai.ingest.clean import clean_text
from core.ai.ingest.extract.base import Section

# pypdf reports recoverable oddities of a file (a bad xref, odd fonts) as warnings; with no
# logging configured (a CLI command) Python would print them on the terminal. They go to our
# logs where logging is configured (the worker), never to a user's screen.
logging.getLogger("pypdf").addHandler(logging.NullHandler())
warnings.filterwarnings("ignore", module="pypdf")


def extract_pdf(data: bytes, max_pages: int) -> list[Section]:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionError("the PDF is password-protected; upload an unprotected copy")
        pages = reader.pages
        count = len(pages)
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ExtractionError(f"the PDF is damaged or not a PDF ({exc})") from None
    if count > max_pages:
        raise ExtractionError(f"the PDF has {count} pages; the limit is {max_pages} (KNOWLEDGE_MAX_PAGES)", pages=count)
    sections = []
    for number, page in enumerate(pages, start=1):
        try:
            text = clean_text(page.extract_text() or "")
        except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError) as exc:
            raise ExtractionError(f"page {number} of the PDF cannot be read ({exc})") from None
        if text:
            sections.append(Section(text, [], metadata={"page": number}))
    if not sections:
        raise ExtractionError(
            "the PDF has no text layer (a scan or images only); run OCR on it or upload the text")
    return sections
