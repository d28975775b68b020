"""Message templates: `{name}` placeholders filled from a lead's facts, without an LLM.

- `{name|friend}` gives a default when the lead has no such fact.
- `{{` and `}}` are literal braces.
- Placeholder names are matched loosely: case, spaces and punctuation do not matter, so a custom
  field "Delivery city" is `{delivery_city}` (or `{Delivery city}`).
"""

from __future__ import annotations

import re
from typing import Any

from core.errors import InvalidInput

MAX_TEMPLATE_CHARS = 4000
_PLACEHOLDER = re.compile(r"\{([^{}|]+?)(?:\|([^{}]*))?\}")
_OPEN, _CLOSE = "\x00", "\x01"


def fact_key(name: str) -> str:
    return re.sub(r"\W+", "_", str(name).strip().casefold()).strip("_")


def _escape(text: str) -> str:
    return text.replace("{{", _OPEN).replace("}}", _CLOSE)


def _unescape(text: str) -> str:
    return text.replace(_OPEN, "{").replace(_CLOSE, "}")


def placeholders(template: str) -> list[str]:
    return [fact_key(m.group(1)) for m in _PLACEHOLDER.finditer(_escape(template))]


def validate(template: str, known: set[str]) -> str:
    """The cleaned template, or InvalidInput naming what is wrong."""
    text = (template or "").strip()
    if not text:
        raise InvalidInput("the campaign message is empty")
    if len(text) > MAX_TEMPLATE_CHARS:
        raise InvalidInput(f"the campaign message is longer than {MAX_TEMPLATE_CHARS} characters")
    stray = _PLACEHOLDER.sub("", _escape(text))
    if "{" in stray or "}" in stray:
        raise InvalidInput("unbalanced { } in the message (write {{ or }} for a literal brace)")
    unknown = sorted({p for p in placeholders(text) if p not in known})
    if unknown:
        raise InvalidInput(f"unknown placeholder(s): {', '.join('{' + u + '}' for u in unknown)}; "
                           f"known: {', '.join('{' + k + '}' for k in sorted(known))}")
    return text


def fill(template: str, facts: dict[str, Any]) -> str:
    """Fill placeholders; a missing fact without a default becomes empty and the spacing around
    it is tidied ("Hello, {name}!" -> "Hello!" rather than "Hello, !")."""
    def value(m: re.Match) -> str:
        found = facts.get(fact_key(m.group(1)))
        if found not in (None, ""):
            return str(found)
        return m.group(2).strip() if m.group(2) is not None else ""

    text = _PLACEHOLDER.sub(value, _escape(template))
    text = re.sub(r"[ \t]+([,.!?;:])", r"\1", text)
    text = re.sub(r",([!?.])", r"\1", text)
    text = re.sub(r"[ \t]{2,}", " ", text)
    return _unescape(text).strip()
