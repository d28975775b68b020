"""PHP-style bracket-key form bodies (`leads[status][0][id]=1`) into nested dicts and lists.

Kommo's standard webhooks are `application/x-www-form-urlencoded` with these keys and string
values only. A level whose keys are exactly 0..n-1 becomes a list, so `leads.status[0]` reads
naturally; anything else stays a dict.
"""

from __future__ import annotations

import re
from binascii import a2b_qp
from typing import Any
from urllib.parse import parse_qsl, quote

from core.kommo.errors import InvalidWebhook

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
MAX_DEPTH = 12  # Kommo bodies nest 6 deep at most; deeper is not a webhook


_KEY_CACHE: dict[str, tuple[str, ...]] = {}  # the same few dozen keys arrive in every hook
_KEY_CACHE_MAX = 4096
MAX_FIELDS = 5000


def split_key(key: str) -> tuple[str, ...]:
    parts = _KEY_CACHE.get(key)
    if parts is not None:
        return parts
    m = _KEY.match(key)
    if not m:
        raise InvalidWebhook("malformed form key")
    parts = (m.group(1), *_PART.findall(m.group(2)))
    if len(parts) > MAX_DEPTH:
        raise InvalidWebhook("form keys nested too deep")
    if len(_KEY_CACHE) >= _KEY_CACHE_MAX:  # keys come from the sender: keep the cache bounded
        _KEY_CACHE.clear()
    _KEY_CACHE[key] = parts
    return parts


def decode_pairs(body: bytes) -> list[tuple[str, str]]:
    """Percent-decoding is strict: a byte sequence that is not UTF-8 means a broken body.

    Same result as `parse_qsl(strict_parsing=True, keep_blank_values=True, errors="strict")`,
    whose per-field work was most of the intake's CPU time. The fast path decodes every key and
    value at once: joined by NUL (not part of any escape), `%XX` escapes rewritten as `=XX` and
    decoded in C by `binascii.a2b_qp`, which is exactly percent-decoding when the text has no
    raw `=` left inside fields, no CR/LF and no malformed escape; then one UTF-8 decode. Any
    body that does not meet those conditions, or that is in error, takes parse_qsl's path
    (which also names the error).
    """
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidWebhook("body is not url-encoded (raw non-ASCII bytes)") from None
    if not text.strip():
        raise InvalidWebhook("empty body")
    pairs = text.split("&")
    if (len(pairs) > MAX_FIELDS or text.count("=") != len(pairs) or "\x00" in text or "%00" in text
            or "\r" in text or "\n" in text or _BAD_ESCAPE.search(text)):
        return _decode_pairs_qsl(text)
    flat: list[str] = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            return _decode_pairs_qsl(text)
        flat.append(key)
        flat.append(value)
    joined = "\x00".join(flat).replace("+", " ").replace("%", "=")
    try:
        decoded = a2b_qp(joined).decode("utf-8")
    except UnicodeDecodeError:
        return _decode_pairs_qsl(text)  # raises, with the reason of the first bad field
    parts = decoded.split("\x00")
    return list(zip(parts[0::2], parts[1::2], strict=True))


def _decode_pairs_qsl(text: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=True, encoding="utf-8",
                         errors="strict", max_num_fields=MAX_FIELDS)
    except UnicodeDecodeError:
        raise InvalidWebhook("broken encoding (not UTF-8)") from None
    except ValueError:
        raise InvalidWebhook("not a form-encoded body") from None


def _set(tree: dict[str, Any], parts: tuple[str, ...], value: str) -> None:
    node = tree
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise InvalidWebhook("conflicting form keys")
        node = nxt
    leaf = parts[-1]
    if leaf == "":  # `a[]=x` appends
        leaf = str(len(node))
    if isinstance(node.get(leaf), dict):
        raise InvalidWebhook("conflicting form keys")
    node[leaf] = value


def _listify(node: dict[str, Any]) -> Any:
    """In place, bottom-up: a dict whose keys are exactly "0".."n-1" becomes a list."""
    for key, value in node.items():
        if isinstance(value, dict):
            node[key] = _listify(value)
    n = len(node)
    if n and "0" in node and all(str(i) in node for i in range(1, n)):
        return [node[str(i)] for i in range(n)]
    return node


def parse_form(body: bytes) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in decode_pairs(body):
        _set(tree, split_key(key), value)
    return _listify(tree)


def _flatten(prefix: str, node: Any, out: list[str]) -> None:
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else None
    if children is None:
        out.append(f"{quote(prefix, safe='')}={quote(str(node), safe='')}")
        return
    for key, value in children:
        _flatten(f"{prefix}[{key}]", value, out)


def encode_form(tree: dict[str, Any]) -> str:
    """The inverse of `parse_form` for the trees it returns (string leaves, no empty levels)."""
    out: list[str] = []
    for key, value in tree.items():
        _flatten(key, value, out)
    return "&".join(out)
