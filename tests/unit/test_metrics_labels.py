"""Metric labels stay a small closed set whatever the caller passes (no series per id or text)."""

from __future__ import annotations

from celery import signals

from core import metrics
from core.conversations.handoff import HANDOFF_REASONS
from tasks.metrics import queue_of


def test_bounded_keeps_codes_and_folds_everything_else():
    assert metrics.bounded("salesbot_run") == "salesbot_run"
    assert metrics.bounded("lead 123456") == "other"
    assert metrics.bounded("conv_" + "x" * 60) == "other"
    assert metrics.bounded(None) == "none"
    assert metrics.bounded("quota", HANDOFF_REASONS) == "quota"
    assert metrics.bounded("anything_new", HANDOFF_REASONS) == "other"


def test_status_classes_keep_the_kommo_codes_that_mean_different_things():
    assert [metrics.status_class(s) for s in (200, 204, 401, 403, 404, 429, 400, 502, None)] == [
        "2xx", "2xx", "401", "403", "404", "429", "4xx", "5xx", "no_answer"]


def test_tasks_are_labelled_by_their_queue():
    assert queue_of("inbound.process_turn") == "inbound"
    assert queue_of("campaigns.run") == "kommo"
    assert queue_of("ingest.source") == "ingest"
    assert queue_of("unknown.task") == "other"


def test_a_finished_task_is_counted_and_timed_on_its_queue():
    class Task:  # what the signal handlers read of a task: its name
        name = "ingest.source"

    task = Task()
    before = metrics.TASKS.labels("ingest", "success")._value.get()
    count_before = metrics.TASK_SECONDS.labels("ingest")._sum.get()
    signals.task_prerun.send(sender=task, task_id="t-1", task=task)
    signals.task_postrun.send(sender=task, task_id="t-1", task=task, state="SUCCESS")
    assert metrics.TASKS.labels("ingest", "success")._value.get() == before + 1
    assert metrics.TASK_SECONDS.labels("ingest")._sum.get() > count_before
