"""What `up` shows of its children's output on a terminal: readable warnings and errors only.

Children log JSON lines (one object per line, see core/logging.py). On a terminal the supervisor
shows a line only when it is a warning or worse, as `[worker] error: message (key=value ...)`,
and drops banners and info lines (they are all in `<home>/logs/<child>.log`). Off a terminal, or
with `up --log-json`, every line is passed through unchanged for a log collector.
"""

from __future__ import annotations

import json

SHOWN_LEVELS = ("warning", "error", "critical", "exception")
_SKIPPED_KEYS = ("event", "level", "timestamp", "logger", "exc_info")


def readable(child: str, line: str) -> str | None:
    """The line as a person should see it, or None to show nothing."""
    text = line.strip()
    if not text.startswith("{"):
        return None  # banners, progress dots, third-party prints: in the child's log file
    try:
        entry = json.loads(text)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    level = str(entry.get("level", "")).lower()
    if level not in SHOWN_LEVELS:
        return None
    details = " ".join(f"{k}={_short(v)}" for k, v in entry.items() if k not in _SKIPPED_KEYS)
    message = f"[{child}] {'error' if level == 'exception' else level}: {entry.get('event', '')}"
    return f"{message} ({details})" if details else message


def _short(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 120 else text[:117] + "..."
