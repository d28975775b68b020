"""Fencing of untrusted text (customer messages, knowledge, Kommo fields) inside a prompt.

Every untrusted block sits between a labelled start and end line carrying a per-prompt random
nonce, and the system rules say such blocks are data, never instructions. Inside a block,
anything that looks like our fence markers is neutralised, so a message cannot close its own
block and pretend to be the system. Secret-looking strings are redacted wherever untrusted text
enters a prompt, so a key pasted into a chat or a document never reaches the provider.
"""

from __future__ import annotations

import re
import secrets

# Fence look-alikes: runs of angle brackets or their Unicode cousins, and our labels.
_FENCE_LIKE = re.compile(r"(<{3,}|>{3,}|«{3,}|»{3,}|‹{3,}|›{3,}|={5,}|`{3,})")
_LABEL_LIKE = re.compile(r"\b(END\s+)?(CUSTOMER_MESSAGE|KNOWLEDGE|LEAD_FACTS|CONVERSATION_SUMMARY|"
                         r"HUMAN_MESSAGE)\b", re.I)
_SECRETS = [  # the first four are unmistakable shapes; the rest are broader heuristics
    re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"),  # OpenAI / OpenRouter style keys
    re.compile(r"\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}"),  # JWTs
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._\-]{16,}"),
    re.compile(r"\b\d{8,10}:[A-Za-z0-9_\-]{30,}\b"),  # Telegram bot tokens
    re.compile(r"(?i)\b(api[_-]?key|token|secret|password|пароль)\s*[:=]\s*\S{6,}"),
    re.compile(r"\b[A-Fa-f0-9]{40,}\b"),
    re.compile(r"\b[A-Za-z0-9+_\-]{48,}={0,2}"),  # long opaque strings (not URLs: no "/")
]


def new_nonce() -> str:
    return secrets.token_hex(4)


def redact_secrets(text: str, extra: list[str] | None = None, broad: bool = True) -> str:
    """Known secret values and secret-shaped strings replaced by "[redacted]". `broad=False`
    (for our own replies) skips the heuristics that could also hit an ordinary sentence."""
    for value in extra or []:
        if value and len(value) >= 6:
            text = text.replace(value, "[redacted]")
    for pattern in _SECRETS if broad else _SECRETS[:4]:
        text = pattern.sub("[redacted]", text)
    return text


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
