"""Knowledge tasks (queue `ingest`): indexing, removal, and the sweep of orphaned sources.

In the embedded default the worker is the one process that holds the vector store, so the CLI
hands it this work while `kommo-agent up` runs and waits for the results (`index_source` and
`delete_source` keep theirs); its bar reads the source's progress from Mongo meanwhile.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import CancelledError

from celery.signals import worker_shutting_down
from celery.utils.log import get_task_logger

from core.ai.ingest.leases import sweep_orphans
from core.errors import KommoAgentError, NotFound
from tasks import runtime
from tasks.app import celery_app
from tasks.base import CoreTask

logger = get_task_logger(__name__)
_running: set[asyncio.Task] = set()  # ingestions on the process's core loop (touched only there)


@worker_shutting_down.connect
def _interrupt_ingestions(**_kwargs) -> None:
    """A stopping worker ends its ingestions as `failed: interrupted` (while the database is
    still up) instead of holding the shutdown until they finish or leaving them in progress."""
    runtime.call_soon(lambda: [task.cancel() for task in list(_running)])


# Time limits come from the settings (tasks/app.py `task_annotations`), below the broker
# visibility timeout; acks_late is safe because a redelivered task finds the live run's lease
# (it never indexes the same generation twice at once), writes the same generation's points
# under deterministic ids otherwise, and skips an unchanged source by its hash.
@celery_app.task(name="ingest.index_source", base=CoreTask, bind=True, acks_late=True, ignore_result=False)
def index_source(self: CoreTask, org_id: str, source_id: str, force: bool = False) -> dict:
    try:
        return self.core(lambda s: _index_source(s, org_id, source_id, force))
    except CancelledError:  # the worker is stopping; the source is failed: interrupted already
        return {"status": "failed", "code": "interrupted", "error": "interrupted (the worker stopped)"}


async def _index_source(services, org_id: str, source_id: str, force: bool) -> dict:
    # The process's one knowledge area: Qdrant Edge allows a single opener of its folder.
    knowledge = await services.knowledge()
    _running.add(asyncio.current_task())
    try:
        source = await knowledge.ingestion.index_source(org_id, source_id, force=force)
    except KommoAgentError as exc:  # the reason is on the source already; bad input is not retried
        logger.warning("ingest failed org=%s source=%s: %s", org_id, source_id, exc)
        return {"status": "failed", "code": exc.code, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - as above (logged with its trace by the service)
        logger.warning("ingest failed org=%s source=%s: %s", org_id, source_id, exc)
        return {"status": "failed", "code": "error", "error": "indexing failed unexpectedly"}
    finally:
        _running.discard(asyncio.current_task())
    return {"status": str(source.status), "chunks": source.chunks_total}


@celery_app.task(name="ingest.delete_source", base=CoreTask, bind=True, ignore_result=False)
def delete_source(self: CoreTask, org_id: str, source_id: str) -> dict:
    return self.core(lambda s: _delete_source(s, org_id, source_id))


async def _delete_source(services, org_id: str, source_id: str) -> dict:
    knowledge = await services.knowledge()
    try:
        await knowledge.ingestion.delete_source(org_id, source_id)
    except NotFound as exc:
        return {"status": "failed", "code": exc.code, "error": str(exc)}
    return {"status": "removed"}


@celery_app.task(name="ingest.sweep", base=CoreTask, bind=True)
def sweep(self: CoreTask) -> int:
    stale = self.settings.knowledge.ingest_stale_s
    return len(self.core(lambda s: sweep_orphans(s.storage.knowledge, stale)))
