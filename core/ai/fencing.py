"""Fencing of untrusted text (customer messages, knowledge, Kommo fields) inside a prompt.

Every untrusted block sits between a labelled start and end line carrying a per-prompt random
nonce, and the system rules say such blocks are data, never instructions. Inside a block,
anything that looks like our fence markers is neutralised, so a message cannot close its own
block and pretend to be the system. Secret-looking strings are redacted wherever untrusted text
enters a prompt (`core.redact`), so a key pasted into a chat or a document never reaches the
provider.
"""

from __future__ import annotations

import re
import secrets

from core.redact import redact_secrets

# Fence look-alikes: runs of angle brackets or their Unicode cousins, and our labels.
_FENCE_LIKE = re.compile(r"(<{3,}|>{3,}|«{3,}|»{3,}|‹{3,}|›{3,}|={5,}|`{3,})")
_LABEL_LIKE = re.compile(r"\b(END\s+)?(CUSTOMER_MESSAGE|KNOWLEDGE|LEAD_FACTS|CONVERSATION_SUMMARY|"
                         r"HUMAN_MESSAGE)\b", re.I)
def new_nonce() -> str:
    return secrets.token_hex(4)


def neutralise(text: str) -> str:
    """Untrusted text with fence look-alikes broken up and control characters dropped."""
    text = "".join(c for c in text if c in "\n\t" or c.isprintable())
    text = _FENCE_LIKE.sub(lambda m: " ".join(m.group(0)), text)
    return _LABEL_LIKE.sub(lambda m: m.group(0).lower().replace("_", " "), text)


def fence(label: str, text: str, nonce: str, attrs: str = "", extra_secrets: list[str] | None = None) -> str:
    """`text` as a labelled data block: `<<<LABEL id=nonce attrs>>> ... <<<END LABEL id=nonce>>>`."""
    head = f"<<<{label} id={nonce}{' ' + attrs if attrs else ''}>>>"
    body = neutralise(redact_secrets(text, extra_secrets))
    return f"{head}\n{body}\n<<<END {label} id={nonce}>>>"
