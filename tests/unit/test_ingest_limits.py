"""Ingestion ends before the broker would redeliver it, and a Qdrant server means no owner."""

from __future__ import annotations

from core.config import QdrantSettings, Settings, WorkerSettings
from tasks.app import celery_config


def test_ingestion_time_limits_stay_below_the_visibility_timeout():
    for visibility in (120, 900, 3600):
        config = celery_config(Settings(worker=WorkerSettings(visibility_timeout_s=visibility,
                                                              max_retry_countdown_s=60)), "redis://x/0")
        limits = config["task_annotations"]["ingest.index_source"]
        effective = config["broker_transport_options"]["visibility_timeout"]
        assert limits["soft_time_limit"] < limits["time_limit"] < effective
    assert "ingest-sweep" in config["beat_schedule"]


def test_with_a_qdrant_server_the_cli_never_goes_through_a_stack(tmp_path):
    from cli.stack import store_dir, through_stack  # noqa: PLC0415 - the CLI's module, under test here
    from core.storage import owner  # noqa: PLC0415 - as above

    settings = Settings(data_dir=tmp_path, qdrant=QdrantSettings(url="http://qdrant:6333"))
    held = owner.acquire(store_dir(settings), "the worker of kommo-agent up")
    try:
        assert through_stack(settings) is False
        embedded = Settings(data_dir=tmp_path)
        assert through_stack(embedded) is False  # held by this very process: it may open the store
    finally:
        held.release()
