"""PHP-style bracket-key form bodies (`leads[status][0][id]=1`) into nested dicts and lists.

Kommo's standard webhooks are `application/x-www-form-urlencoded` with these keys and string
values only. A level whose keys are exactly 0..n-1 becomes a list, so `leads.status[0]` reads
naturally; anything else stays a dict.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from core.kommo.errors import InvalidWebhook

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
MAX_DEPTH = 12  # Kommo bodies nest 6 deep at most; deeper is not a webhook


def split_key(key: str) -> list[str]:
    m = _KEY.match(key)
    if not m:
        raise InvalidWebhook("malformed form key")
    parts = [m.group(1), *_PART.findall(m.group(2))]
    if len(parts) > MAX_DEPTH:
        raise InvalidWebhook("form keys nested too deep")
    return parts


def decode_pairs(body: bytes) -> list[tuple[str, str]]:
    """Percent-decoding is strict: a byte sequence that is not UTF-8 means a broken body."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidWebhook("body is not url-encoded (raw non-ASCII bytes)") from None
    if not text.strip():
        raise InvalidWebhook("empty body")
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=True, encoding="utf-8",
                         errors="strict", max_num_fields=5000)
    except UnicodeDecodeError:
        raise InvalidWebhook("broken encoding (not UTF-8)") from None
    except ValueError:
        raise InvalidWebhook("not a form-encoded body") from None


def _set(tree: dict[str, Any], parts: list[str], value: str) -> None:
    node = tree
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise InvalidWebhook("conflicting form keys")
        node = nxt
    leaf = parts[-1]
    if leaf == "":  # `a[]=x` appends
        leaf = str(sum(1 for _ in node))
    if isinstance(node.get(leaf), dict):
        raise InvalidWebhook("conflicting form keys")
    node[leaf] = value


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {k: _listify(v) for k, v in node.items()}
    if items and all(k.isdigit() for k in items) and sorted(int(k) for k in items) == list(range(len(items))):
        return [items[str(i)] for i in range(len(items))]
    return items


def parse_form(body: bytes) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in decode_pairs(body):
        _set(tree, split_key(key), value)
    return _listify(tree)
