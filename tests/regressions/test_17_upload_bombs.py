"""Issue 17: uploads were parsed with no guard: a zip bomb disguised as DOCX/XLSX unpacked in the
worker, and a parser stuck on a crafted file held it forever. Archives are checked before
parsing, and parsers run in a child process under a time limit; each refusal names its limit."""

from __future__ import annotations

import io
import zipfile

import pytest

from core.ai.errors import ExtractionError
from core.ai.ingest.extract.guard import GuardedExtractor, check_archive
from core.config import KnowledgeSettings
from tests.conftest import shared_path


def _bomb(name: str = "word/document.xml", size: int = 20_000_000) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr(name, b"\0" * size)
    return out.getvalue()


def test_a_zip_bomb_is_refused_by_its_compression_ratio_before_parsing():
    data = _bomb()
    assert len(data) < 100_000
    for filename in ("contract.docx", "prices.xlsx"):
        with pytest.raises(ExtractionError, match="zip bomb.*KNOWLEDGE_MAX_COMPRESSION_RATIO"):
            check_archive(filename, data, KnowledgeSettings())


def test_unpacked_size_and_entry_count_are_capped():
    real = shared_path("datasets", "docs_ru", "poi_bib-chernigovka_calendar2017.docx").read_bytes()
    check_archive("calendar.docx", real, KnowledgeSettings())  # a real document passes the defaults
    with pytest.raises(ExtractionError, match="unpacks to 1 MB; the limit is 0 MB.*KNOWLEDGE_MAX_UNPACKED_BYTES"):
        check_archive("calendar.docx", real, KnowledgeSettings(max_unpacked_bytes=100_000))
    with pytest.raises(ExtractionError, match="KNOWLEDGE_MAX_ARCHIVE_ENTRIES"):
        check_archive("calendar.docx", real, KnowledgeSettings(max_archive_entries=3))


def test_a_parser_past_its_time_limit_is_killed_and_the_next_file_still_works():
    real = shared_path("datasets", "docs_ru", "poi_bib-chernigovka_calendar2017.docx").read_bytes()
    slow = GuardedExtractor(KnowledgeSettings(parse_timeout_s=0.001))
    try:
        with pytest.raises(ExtractionError, match="longer than 0.001 s.*KNOWLEDGE_PARSE_TIMEOUT_S"):
            slow.extract("calendar.docx", real)
        child = slow._child
        assert child is None  # killed, not left running
        slow.settings = KnowledgeSettings(parse_timeout_s=60)
        sections = slow.extract("calendar.docx", real)
        assert "Давыдычева" in sections[0].text
        with pytest.raises(ExtractionError, match="zip bomb"):
            slow.extract("bomb.docx", _bomb())
    finally:
        slow.close()
