"""Bounds on what a hook body may hold: ids that fit int64, capped strings, items and nesting.

Every value a hook sends may end up in a stored document; one that BSON cannot hold (an integer
beyond 64 bits) or one far larger than Kommo ever sends is refused for its own request with a
reason, before anything is written, so it can never fail a group commit shared with others.
"""

from __future__ import annotations

from typing import Any

from core.kommo.errors import InvalidWebhook

MAX_ID = 2**63 - 1  # BSON's int64
MAX_VALUE_CHARS = 64 * 1024  # one form value or JSON string; Kommo's longest are note texts
MAX_JSON_DEPTH = 12
MAX_JSON_NODES = 20_000


def bounded_id(value: Any, what: str, *, zero: bool = False) -> int | None:
    """An id Kommo sent: None when absent or not a number; a number outside 1..2^63-1 is refused
    (`zero`: 0 is allowed too, Kommo's "nobody", e.g. `created_user_id=0` of a system action)."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if not text.lstrip("-").isdigit() or not text.isascii():
            return None
        number = int(text)
    if number == 0 and zero:
        return None
    if not 0 < number <= MAX_ID:
        raise InvalidWebhook(f"{what[:40]} out of range (ids are positive 64-bit integers)")
    return number


def _id_like(key: str) -> bool:
    return key == "id" or key.endswith("_id")


def check_form_tree(node: Any, path: str = "") -> None:
    """Every `id`/`*_id` value of a parsed form body that is a number fits int64; no value is
    longer than `MAX_VALUE_CHARS`."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = ((str(i), v) for i, v in enumerate(node))
    else:
        return
    for key, value in items:
        if isinstance(value, str):
            if len(value) > MAX_VALUE_CHARS:
                raise InvalidWebhook(f"field {(path + '[' + key + ']')[-60:]} longer than {MAX_VALUE_CHARS} "
                                     "characters")
            if _id_like(key):
                bounded_id(value, f"{path}[{key}]" if path else key, zero=True)
        else:
            check_form_tree(value, f"{path}[{key}]" if path else key)


def check_json_tree(value: Any) -> None:
    """A JSON hook body storable as it is: nesting, size, integers and strings bounded."""
    stack = [(value, 0)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > MAX_JSON_NODES:
            raise InvalidWebhook(f"body holds more than {MAX_JSON_NODES} values")
        if depth > MAX_JSON_DEPTH:
            raise InvalidWebhook(f"body nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(node, bool) or node is None or isinstance(node, float):
            continue
        if isinstance(node, int):
            if not -MAX_ID - 1 <= node <= MAX_ID:
                raise InvalidWebhook("a number in the body does not fit 64 bits")
        elif isinstance(node, str):
            if len(node) > MAX_VALUE_CHARS:
                raise InvalidWebhook(f"a value longer than {MAX_VALUE_CHARS} characters")
        elif isinstance(node, dict):
            for key, child in node.items():
                if len(key) > 200 or "\x00" in key or key.startswith("$"):
                    raise InvalidWebhook("a key in the body cannot be stored (too long, '$' or NUL)")
                stack.append((child, depth + 1))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
