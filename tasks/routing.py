"""Queues and routes by task area (plain data: the CLI reads it without importing Celery)."""

QUEUES = ("inbound", "kommo", "ingest")
# Each task name prefix (its area) and the queue its tasks run on.
ROUTES = {
    "inbound.*": {"queue": "inbound"},
    "kommo.*": {"queue": "kommo"},  # also the pre-0.2 campaign names, kept routed for one release
    "campaigns.*": {"queue": "kommo"},  # campaigns are Kommo API calls at Kommo's pace
    "ingest.*": {"queue": "ingest"},
    "ask.*": {"queue": "inbound"},  # interactive: never behind a long ingestion
}
