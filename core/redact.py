"""Secret-shaped text removed before it leaves us: prompts, log lines, status pages and CLI output.

Known secret values are replaced verbatim; API keys, JWTs, bearer tokens, bot tokens and the
password in a URL's user info (`mongodb://user:pass@host`) by their shape.
"""

from __future__ import annotations

import re

MARK = "[redacted]"
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad"))
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^:/@\s]*):([^@/\s]+)@")
SHAPES = [  # the first four are unmistakable shapes; the rest are broader heuristics
    re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"),  # OpenAI / OpenRouter style keys
    re.compile(r"\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}"),  # JWTs
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._\-]{16,}"),
    re.compile(r"\b\d{8,10}:[A-Za-z0-9_\-]{30,}\b"),  # Telegram bot tokens
    re.compile(r"(?i)\b(api[_-]?key|token|secret|password|пароль)\s*[:=]\s*\S{6,}"),
    re.compile(r"\b[A-Fa-f0-9]{40,}\b"),
    re.compile(r"\b[A-Za-z0-9+_\-]{48,}={0,2}"),  # long opaque strings (not URLs: no "/")
]


def url_without_password(text: str) -> str:
    """`scheme://user:secret@host` -> `scheme://user:***@host`, anywhere in `text`."""
    return _URL_PASSWORD.sub(r"\1:***@", text)


def redact_secrets(text: str, extra: list[str] | None = None, broad: bool = True) -> str:
    """Known secret values and secret-shaped strings replaced by "[redacted]". `broad=False`
    (for our own replies) skips the heuristics that could also hit an ordinary sentence."""
    text = text.translate(_INVISIBLE)  # a zero-width space inside a key must not hide its shape
    for value in extra or []:
        if value and len(value) >= 6:
            text = text.replace(value, MARK)
    text = url_without_password(text)
    for pattern in SHAPES if broad else SHAPES[:4]:
        text = pattern.sub(MARK, text)
    return text
