"""On a terminal `up` shows its children's warnings and errors as readable lines, nothing else."""

from __future__ import annotations

import json

from cli.console_lines import readable


def test_warnings_and_errors_become_readable_lines():
    line = json.dumps({"event": "kommo call failed", "level": "error", "timestamp": "2026-12-04T10:00:00Z",
                       "org_id": "org_1", "status": 503})
    assert readable("worker", line) == "[worker] error: kommo call failed (org_id=org_1 status=503)"
    assert readable("web", json.dumps({"event": "slow", "level": "warning"})) == "[web] warning: slow"


def test_info_lines_banners_and_garbage_are_not_shown():
    assert readable("worker", json.dumps({"event": "task done", "level": "info"})) is None
    assert readable("worker", " -------------- celery@host v5.7.0 (recovery)") is None
    assert readable("worker", "{not json") is None
    assert readable("worker", "[1, 2]") is None


def test_long_values_are_cut():
    shown = readable("bot", json.dumps({"event": "x", "level": "error", "detail": "y" * 500}))
    assert len(shown) < 200 and shown.endswith("...)")
