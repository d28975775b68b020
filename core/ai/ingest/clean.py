"""Text cleaning between extraction and splitting: what every format leaves behind."""

from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u200e\u200f\ufeff\u00ad]")
_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")  # "инфор-\nмация" from PDF line wrapping
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """NFC, no control/zero-width characters or soft hyphens, PDF hyphenation re-joined,
    runs of spaces collapsed, at most one blank line between paragraphs."""
    if not text:
        return ""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    text = _HYPHEN_BREAK.sub(r"\1\2", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def clean_heading(text: str) -> str:
    return " ".join(clean_text(text).split())
