"""Knowledge ingestion tasks (queue `ingest`)."""

from __future__ import annotations

from celery.utils.log import get_task_logger

from core.errors import NotFound
from core.testchat.service import answer_queued_turn
from tasks.app import celery_app
from tasks.base import CoreTask

logger = get_task_logger(__name__)


# Time limit below the broker visibility timeout (tasks/app.py), or Redis redelivers a live task.
# acks_late is safe because indexing is idempotent: a redelivered task writes the same
# generation's points under deterministic ids, and an unchanged source is skipped by its hash.
@celery_app.task(name="ingest.index_source", base=CoreTask, bind=True, acks_late=True, soft_time_limit=3000,
                 time_limit=3300)
def index_source(self: CoreTask, org_id: str, source_id: str) -> str:
    return self.core(lambda s: _index_source(s, org_id, source_id))


async def _index_source(services, org_id: str, source_id: str) -> str:
    # The process's one knowledge area: Qdrant Edge allows a single opener of its folder.
    knowledge = await services.knowledge()
    try:
        source = await knowledge.ingestion.index_source(org_id, source_id)
    except Exception as exc:  # noqa: BLE001 - the reason is on the source already; bad input is not retried
        logger.warning("ingest failed org=%s source=%s: %s", org_id, source_id, exc)
        return "failed"
    return str(source.status)


@celery_app.task(name="ingest.delete_source", base=CoreTask, bind=True, acks_late=True)
def delete_source(self: CoreTask, org_id: str, source_id: str) -> str:
    return self.core(lambda s: _delete_source(s, org_id, source_id))


async def _delete_source(services, org_id: str, source_id: str) -> str:
    knowledge = await services.knowledge()
    try:
        await knowledge.ingestion.delete_source(org_id, source_id)
    except NotFound:
        return "gone"  # deleted already (a redelivery, or two deletes)
    return "deleted"


# On the ingest queue: the test chat's runtime reads the vector store this worker owns.
@celery_app.task(name="ingest.test_turn", base=CoreTask, bind=True, soft_time_limit=120, time_limit=150)
def test_turn(self: CoreTask, org_id: str, request_id: str) -> str:
    return self.core(lambda s: answer_queued_turn(s.redis, s.test_turns(), org_id, request_id))
