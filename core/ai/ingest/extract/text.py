"""Plain text and Markdown, in whatever encoding the file came in (UTF-8/16, CP1251, CP866, KOI8-R...)."""

from __future__ import annotations

import re

from charset_normalizer import from_bytes

from core.ai.errors import ExtractionError
from core.ai.ingest.clean import clean_heading, clean_text
from core.ai.ingest.extract.base import Section, SectionBuilder

_RU_COMMON = set("оеаинтсрвлкмдпуяыьгзбчйхжшюцщэфъё ")
_CYRILLIC_CODECS = ("cp1251", "cp866", "koi8_r", "mac_cyrillic")
_WORDS = re.compile(r"[^\W\d_]+")
_CYR_WORD = re.compile(r"[А-Яа-яЁё]+")
_ATX = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SETEXT = re.compile(r"^(=+|-+)\s*$")


def _russian_score(text: str) -> float:
    """Share of non-ASCII words that look Russian: all Cyrillic, mostly frequent lowercase
    letters. A wrong code page gives box-drawing signs, capitals, or Cyrillic letters stuck
    inside Latin words (Spanish "á" read as CP1251 is "б")."""
    words = [w for w in _WORDS.findall(text) if not w.isascii()]
    if not words:
        return 0.0
    good = sum(bool(_CYR_WORD.fullmatch(w)) and sum(ch in _RU_COMMON for ch in w) * 2 >= len(w)
               for w in words)
    return good / len(words)


def decode_text(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if any(b >= 0x80 for b in data[:4096]):
        # Legacy Cyrillic code pages all decode without error, so pick the most Russian-looking.
        best = max(_CYRILLIC_CODECS, key=lambda c: _russian_score(data.decode(c, errors="replace")))
        text = data.decode(best, errors="replace")
        if _russian_score(text) >= 0.8:
            return text
    # Not Cyrillic: the markets we serve beyond Russian (en/es/pt) use Windows-1252 as their
    # legacy code page; statistical guessers often pick Central European pages for short texts.
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        pass
    guess = from_bytes(data).best()
    if guess is None:
        raise ExtractionError("the file is not text in any known encoding")
    return str(guess)


def parse_markdown(text: str, title: str = "", *, headings: bool = True) -> list[Section]:
    """Paragraphs under their Markdown headings (ATX `#` and setext underlines)."""
    builder = SectionBuilder([title] if title else [])
    lines = clean_text(text).split("\n")
    paragraph: list[str] = []

    def flush_paragraph() -> None:
        if paragraph:
            builder.paragraph("\n".join(paragraph))
            paragraph.clear()

    for i, line in enumerate(lines):
        atx = _ATX.match(line) if headings else None
        if atx:
            flush_paragraph()
            builder.heading(len(atx.group(1)), clean_heading(atx.group(2)))
        elif headings and _SETEXT.match(line) and len(paragraph) == 1 and i > 0 and lines[i - 1]:
            heading = paragraph.pop()
            builder.heading(1 if line.startswith("=") else 2, clean_heading(heading))
        elif not line.strip():
            flush_paragraph()
        else:
            paragraph.append(line)
    flush_paragraph()
    return builder.build()


def extract_text(data: bytes, title: str, *, markdown: bool) -> list[Section]:
    text = decode_text(data)
    sections = parse_markdown(text, title, headings=markdown)
    if not sections:
        raise ExtractionError("the file contains no text")
    return sections
