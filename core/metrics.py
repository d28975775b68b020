"""Prometheus metrics every process records: webhooks, replies, handoffs, LLM, Kommo calls, queues.

Labels are bounded by construction: they take values from small closed sets (a delivery mode, a
handoff reason code, an HTTP status class, a queue name), never a lead, conversation or org id.
`bounded` maps anything else to "other", so a hostile or buggy caller cannot grow a series per
value. The web app serves these on `/metrics`; a worker serves them on WORKER_METRICS_PORT.
"""

from __future__ import annotations

import re

from prometheus_client import Counter, Gauge, Histogram

# A label value is a short code; anything else (free text, ids) would make a series per value.
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def bounded(value: object, allowed: frozenset[str] | None = None) -> str:
    """`value` as a label if it is a short code (and in `allowed` when given), else "other"."""
    text = str(value or "none").lower()
    if allowed is not None:
        return text if text in allowed else "other"
    return text if _CODE.match(text) else "other"


def status_class(status: int | None) -> str:
    """429 and 401/403/404 are kept apart (they mean different things at Kommo), the rest by class."""
    if status is None:
        return "no_answer"
    if status in (401, 403, 404, 429):
        return str(status)
    return f"{status // 100}xx"


WEBHOOKS = Counter("kommo_webhooks_total", "Kommo webhook requests by route and outcome", ["route", "outcome"])
WEBHOOK_EVENTS = Counter("kommo_webhook_events_total", "Webhook events by outcome", ["outcome"])
REPLIES = Counter("agent_replies_total", "Replies handed to Kommo by delivery mode", ["mode"])
HANDOFFS = Counter("agent_handoffs_total", "Conversations handed to humans by reason", ["reason"])
LLM_SECONDS = Histogram("llm_request_seconds", "LLM completion latency, retries included", ["outcome"],
                        buckets=(0.25, 0.5, 1, 2, 4, 8, 15, 30, 60))
LLM_TOKENS = Counter("llm_tokens_total", "LLM tokens by kind", ["kind"])
KOMMO_CALLS = Counter("kommo_requests_total", "Kommo API calls by method and status class", ["method", "status"])
KOMMO_WAIT = Histogram("kommo_ratelimit_wait_seconds", "Time a Kommo call waited for its rate-limit slot",
                       buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10))
TASKS = Counter("tasks_total", "Background tasks finished by queue and state", ["queue", "state"])
TASK_SECONDS = Histogram("task_seconds", "Background task run time by queue", ["queue"],
                         buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300))
QUEUE_DEPTH = Gauge("queue_depth", "Messages waiting in a broker queue", ["queue"])

HTTP_METHODS = frozenset({"get", "post", "patch", "put", "delete"})
