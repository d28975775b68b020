"""Structured logging: JSON lines through structlog, with context vars (request id, org id)."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

from core.redact import redact_secrets


def scrub(_logger, _method, event: dict) -> dict:
    """Secrets never reach a log line: every string value is redacted by shape."""
    return {k: redact_secrets(v) if isinstance(v, str) and k != "timestamp" else v for k, v in event.items()}


def configure_logging(level: str = "INFO", json: bool = True, stream: TextIO | None = None) -> None:
    """Structlog and stdlib logging through one scrubbing renderer, to `stream` (stderr by default)."""
    stream = stream or sys.stderr
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, scrub, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    # Route stdlib logging (aiohttp, celery, pymongo) through the same renderer.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.format_exc_info,
            scrub, renderer,
        ])
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("pymongo", "asyncio", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
