"""Conversation memory for the prompt: recent turns verbatim, older ones as a rolling summary.

The summary is extractive (one short line per message), so keeping memory costs no LLM call and
cannot invent facts. The newest lines win when the summary outgrows its budget, since they say
where the conversation stands now.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.ai.tokens import count_tokens, truncate_to_tokens
from core.models.conversation import Message

MESSAGE_OVERHEAD = 4  # role and separators per chat message, as providers count them
SUMMARY_LINE_TOKENS = 40
_ROLE = {"customer": "Customer", "agent": "Agent", "human": "Colleague"}


@dataclass
class Memory:
    recent: list[Message] = field(default_factory=list)  # oldest first, all fit the budget
    summary: str = ""  # covers every message older than `recent`
    dropped: int = 0


def summary_line(message: Message) -> str:
    text = " ".join(message.text.split())
    short = truncate_to_tokens(text, SUMMARY_LINE_TOKENS)
    return f"- {_ROLE.get(message.role, message.role)}: {short}{'…' if short != text else ''}"


def roll_summary(summary: str, leaving: list[Message], max_tokens: int = 400) -> str:
    """`summary` extended with the messages leaving the recent window, cut to `max_tokens`
    by dropping its oldest lines. The engine can store the result in Conversation.summary."""
    # Lines already in the summary are not added again, so storing the result and rolling the
    # same messages on the next turn stays idempotent.
    lines = [ln for ln in summary.splitlines() if ln.strip()]
    lines += [ln for ln in dict.fromkeys(summary_line(m) for m in leaving) if ln not in set(lines)]
    kept: list[str] = []
    used = 0
    for line in reversed(lines):
        cost = count_tokens(line) + 1
        if used + cost > max_tokens:
            break
        kept.append(line)
        used += cost
    return "\n".join(reversed(kept))


def message_cost(message: Message) -> int:
    return count_tokens(message.text) + MESSAGE_OVERHEAD + 12  # + fence lines around customer text


def fit_history(history: list[Message], budget_tokens: int, *, summary: str = "",
                summary_tokens: int = 400) -> Memory:
    """Keep the newest messages that fit `budget_tokens`; roll the rest into the summary."""
    ordered = sorted(history, key=lambda m: m.created_at)
    kept: list[Message] = []
    used = 0
    for message in reversed(ordered):
        cost = message_cost(message)
        if used + cost > budget_tokens:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    dropped = ordered[: len(ordered) - len(kept)]
    return Memory(recent=kept, summary=roll_summary(summary, dropped, summary_tokens) if (summary or dropped) else "",
                  dropped=len(dropped))
